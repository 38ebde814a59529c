//! Object storage with `corekit::storage` on a local directory: keys, metadata, ranges,
//! listing one level at a time, and a create-only write that refuses to overwrite.
//!
//! ```sh
//! cargo run --example storage
//! ```

use corekit::storage::{ByteRange, GetOptions, LocalStorage, ObjectPath, PutOptions, Storage};

#[tokio::main]
async fn main() -> corekit::Result<()> {
    let root = std::env::temp_dir().join(format!("corekit-storage-example-{}", std::process::id()));
    let storage = Storage::new(LocalStorage::new(&root)?);
    println!("backend: {} under {}", storage.backend(), root.display());

    let report = ObjectPath::new("reports/2026/q4 summary.csv")?;
    storage
        .put(
            &report,
            "region,revenue\neu,100\nus,120\n".into(),
            &PutOptions::default()
                .content_type("text/csv")
                .metadata("owner", "finance"),
        )
        .await?;
    storage
        .put(
            &ObjectPath::new("reports/2026/q3.csv")?,
            "x".into(),
            &PutOptions::default(),
        )
        .await?;
    storage
        .put(
            &ObjectPath::new("reports/readme.txt")?,
            "hi".into(),
            &PutOptions::default(),
        )
        .await?;

    let head = storage.head(&report).await?;
    println!(
        "head: {} bytes, {:?}, {:?}",
        head.size, head.content_type, head.metadata
    );
    let first_line = storage
        .get_with(&report, &GetOptions::range(ByteRange::Bounded(0, 14)))
        .await?;
    println!(
        "first bytes: {:?}",
        String::from_utf8_lossy(&first_line.bytes)
    );

    let level = storage
        .list_with_delimiter(Some(&ObjectPath::new("reports")?))
        .await?;
    println!(
        "reports/: objects {:?}, prefixes {:?}",
        level
            .objects
            .iter()
            .map(|m| m.path.to_string())
            .collect::<Vec<_>>(),
        level
            .common_prefixes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );

    // A second writer of a create-only key loses instead of overwriting.
    let lock = ObjectPath::new("locks/nightly-job")?;
    storage
        .put(&lock, "instance-a".into(), &PutOptions::create_only())
        .await?;
    let lost = storage
        .put(&lock, "instance-b".into(), &PutOptions::create_only())
        .await;
    println!("second create-only put: {}", lost.unwrap_err());

    // Keys that would escape the root never reach the disk.
    println!(
        "rejected: {}",
        ObjectPath::new("../etc/passwd").unwrap_err()
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
