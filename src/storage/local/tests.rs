//! Unit tests of the local backend.

use super::*;

#[test]
fn an_abandoned_write_changes_nothing() {
    let root = std::env::temp_dir().join(format!("corekit-abandon-{}", fastrand::u64(..)));
    let s = LocalStorage::new(&root).unwrap();
    let k = ObjectPath::new("k").unwrap();
    s.put_blocking(&k, b"kept", &PutOptions::default(), &Abandoned::default())
        .unwrap();
    let gone = Abandoned::default();
    drop(AbandonOnDrop(Some(gone.clone())));
    let e = s
        .put_blocking(&k, b"late", &PutOptions::default(), &gone)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(s.delete_blocking(&k, &gone).is_err());
    let got = s.get_blocking(&k, &GetOptions::default()).unwrap();
    assert_eq!(
        &got.bytes[..],
        b"kept",
        "neither the late put nor the late delete landed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(TEMP_MARK))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the late put's temporary file is gone"
    );
    let _ = std::fs::remove_dir_all(root);
}
