//! Object storage with `corekit::storage` on a local directory: keys, metadata, ranges,
//! listing one level at a time, a create-only write that refuses to overwrite, a streamed
//! multipart upload read back as a stream, and a handle scoped under a prefix. The same code runs
//! on S3, GCS or Azure: only the `Storage` construction changes (`Storage::from_env()` with
//! `STORAGE_URL=s3://bucket/prefix`, say).
//!
//! ```sh
//! cargo run --example storage
//! ```

use corekit::storage::{
    ByteRange, GetOptions, LocalStorage, ObjectPath, PresignMethod, PutOptions, Storage,
};
use futures_util::StreamExt as _;

#[tokio::main]
async fn main() -> corekit::Result<()> {
    let root = std::env::temp_dir().join(format!("corekit-storage-example-{}", std::process::id()));
    let storage = Storage::new(LocalStorage::new(&root)?);
    println!(
        "backend: {} under {}",
        storage.backend_name(),
        root.display()
    );

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

    // A 20 MiB body from a reader: three 8 MiB parts, up to four in flight.
    let body = vec![42u8; 20 << 20];
    let export = ObjectPath::new("exports/2026-11.bin")?;
    let meta = storage
        .put_reader(&export, &body[..], &PutOptions::default())
        .await?;
    let mut stream = storage.get_stream(&export, &GetOptions::default()).await?;
    let (mut chunks, mut bytes) = (0, 0);
    while let Some(chunk) = stream.stream.next().await {
        bytes += chunk?.len();
        chunks += 1;
    }
    println!(
        "streamed upload: {} bytes written, read back in {chunks} chunks ({bytes} bytes)",
        meta.size
    );

    // A tenant's view: keys are relative to its prefix, nothing outside is reachable.
    let tenant = storage.scoped(&ObjectPath::new("tenants/acme")?)?;
    tenant
        .put(
            &ObjectPath::new("logo.svg")?,
            "<svg/>".into(),
            &PutOptions::default(),
        )
        .await?;
    println!(
        "tenant sees {:?}; the store holds tenants/acme/logo.svg: {}",
        tenant
            .list(None)
            .await?
            .iter()
            .map(|m| m.path.to_string())
            .collect::<Vec<_>>(),
        storage
            .exists(&ObjectPath::new("tenants/acme/logo.svg")?)
            .await?
    );

    // Presigned URLs are for the clouds; the local disk says so instead of pretending.
    let presign = storage
        .presign(
            PresignMethod::Get,
            &report,
            std::time::Duration::from_secs(600),
        )
        .await;
    println!("presign on local: {}", presign.unwrap_err());

    // Keys that would escape the root never reach the disk.
    println!(
        "rejected: {}",
        ObjectPath::new("../etc/passwd").unwrap_err()
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
