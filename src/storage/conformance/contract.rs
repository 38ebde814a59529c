//! What the handle promises the same on every backend: the portable metadata contract and
//! `list_after`'s start point.

use super::key;
use crate::ErrorKind;
use crate::storage::{PutOptions, Storage};

/// The portable metadata contract: what a backend could not keep as written is refused with
/// `InvalidInput` before any request (nothing is stored), and what is accepted reads back
/// byte for byte.
pub async fn metadata_contract(s: Storage, base: &str) {
    let k = key(&format!("{base}/contract"));
    let refused = [
        PutOptions::default().metadata("Owner", "ada"),
        PutOptions::default().metadata("owner", ""),
        PutOptions::default().metadata("owner", " ada"),
        PutOptions::default().metadata("owner", "ada "),
        PutOptions::default().metadata("owner", "Adä"),
        PutOptions::default().content_disposition("attachment; filename=\"résumé.pdf\""),
    ];
    for options in refused {
        let e = s
            .put(&k, "x".into(), &options)
            .await
            .expect_err("metadata a backend cannot keep is refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{options:?}: {e}");
    }
    assert!(!s.exists(&k).await.expect("exists"), "nothing was stored");
    let options = PutOptions::default()
        .content_disposition("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
        .metadata("owner", "Ada Lovelace")
        .metadata("trace_id", "a-b_c.d/e:f=g");
    s.put(&k, "x".into(), &options).await.expect("put");
    let head = s.head(&k).await.expect("head");
    assert_eq!(
        head.metadata, options.metadata,
        "metadata reads back as written"
    );
    assert_eq!(head.content_disposition, options.content_disposition);
}

/// `list_after` returns only keys that sort after the start point (byte order), also where the
/// server does not (SeaweedFS answers start-after `b/c` with `b-c`).
pub async fn list_after_starts_after(s: Storage, base: &str) {
    for name in ["a", "b", "b-c", "c"] {
        s.put(
            &key(&format!("{base}/la/{name}")),
            "x".into(),
            &PutOptions::default(),
        )
        .await
        .expect("put");
    }
    let prefix = key(&format!("{base}/la"));
    for (after, expected) in [("b", vec!["b-c", "c"]), ("b/c", vec!["c"])] {
        let after = key(&format!("{base}/la/{after}"));
        let listed = s
            .list_after(Some(&prefix), &after)
            .await
            .expect("list_after");
        let names: Vec<String> = listed.iter().map(|m| m.path.as_str().to_owned()).collect();
        let expected: Vec<String> = expected.iter().map(|n| format!("{base}/la/{n}")).collect();
        assert_eq!(names, expected, "listed after {after}");
    }
}
