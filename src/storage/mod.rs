//! One object-storage API: keys as a validated [`ObjectPath`], metadata that round-trips,
//! conditional writes with one portable [`Version`] token, streaming reads and multipart
//! uploads, presigned URLs, retries with a per-attempt timeout and an overall deadline, and the
//! same behaviour on every backend (checked by one conformance suite run against each).
//!
//! | backend | feature | type | version token | tested against |
//! |---|---|---|---|---|
//! | in-memory (tests, development) | `storage-memory` | [`MemoryStorage`] | a generation counter | itself |
//! | local directory (atomic writes, sidecar metadata, no escaping the root) | `storage-local` | [`LocalStorage`] | size + modification time (ns) | the disk |
//! | S3 and S3-compatible stores (aws-sdk-s3) | `storage-s3` | [`S3Storage`] | ETag | SeaweedFS |
//! | Google Cloud Storage (gcloud-storage, JSON API) | `storage-gcs` | [`GcsStorage`] | generation | fake-gcs-server |
//! | Azure Blob Storage (azure_storage_blob) | `storage-azure` | [`AzureStorage`] | ETag | Azurite |
//!
//! What each backend supports is in [`Capabilities`]; what it cannot do fails with
//! [`Unsupported`](crate::ErrorKind::Unsupported) before any request:
//!
//! | | memory | local | S3 | GCS | Azure |
//! |---|---|---|---|---|---|
//! | create-only / compare-and-swap put | yes | yes (exact within one process) | yes | yes | yes |
//! | multipart upload ([`Storage::put_stream`]) | buffered, one put | temp file, parts at offsets | multipart upload | resumable session, parts in order | staged blocks |
//! | presigned GET/PUT ([`Storage::presign`]), longest expiry | no | no | SigV4, 7 days | V4, 7 days (needs a service-account key) | service SAS, 7 days (needs the account key) |
//! | content type etc. in listings | yes | no (sidecar not read) | no | yes | yes |
//! | `list_with_delimiter` | computed | computed | server-side | server-side | computed from the flat listing |
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use corekit::storage::{MemoryStorage, ObjectPath, PutOptions, Storage};
//!
//! let storage = Storage::new(MemoryStorage::new());
//! let key = ObjectPath::new("reports/2026/q4.csv")?;
//! storage.put(&key, "a,b\n1,2\n".into(), &PutOptions::default().content_type("text/csv")).await?;
//! let object = storage.get(&key).await?;
//! assert_eq!(object.meta.content_type.as_deref(), Some("text/csv"));
//! // Create-only: a second writer loses with AlreadyExists instead of overwriting.
//! let err = storage.put(&key, "x".into(), &PutOptions::create_only()).await.unwrap_err();
//! assert_eq!(err.kind(), corekit::ErrorKind::AlreadyExists);
//! # Ok::<(), corekit::Error>(())
//! # }).unwrap();
//! ```
//!
//! Percent signs, spaces and Unicode in keys are literal: `%2e%2e` is a file named `%2e%2e`,
//! never `..`.
//!
//! ## Configuration
//!
//! [`Storage::from_env`] reads [`StorageConfig`] from `STORAGE_*` variables:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `STORAGE_BACKEND` | from `STORAGE_URL`, else `local` | `memory`, `local`, `s3`, `gcs`, `azure` |
//! | `STORAGE_URL` | — | `file:///srv/data`, `memory://`, `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` |
//! | `STORAGE_LOCAL_ROOT` | `./data` | the local backend's directory |
//! | `STORAGE_BUCKET`, `STORAGE_CONTAINER` | — | S3/GCS bucket, Azure container (when no URL names it) |
//! | `STORAGE_PREFIX` | — | every key is scoped under it ([`Storage::scoped`]) |
//! | `STORAGE_ENDPOINT` | — | S3-compatible store (MinIO, SeaweedFS, R2) or emulator; GCS also honours `STORAGE_EMULATOR_HOST` |
//! | `STORAGE_REGION` | AWS chain, else `us-east-1` | S3 region |
//! | `STORAGE_GCS_CREDENTIALS_FILE` | application default credentials | a service-account key file |
//! | `STORAGE_AZURE_ACCOUNT` | `AZURE_STORAGE_ACCOUNT` | storage account |
//! | `STORAGE_AZURE_ACCESS_KEY` (secret) | `AZURE_STORAGE_KEY` | account key |
//! | `STORAGE_AZURE_SAS_TOKEN` (secret) | `AZURE_STORAGE_SAS_TOKEN` | SAS token |
//! | `STORAGE_AZURE_CONNECTION_STRING` (secret) | `AZURE_STORAGE_CONNECTION_STRING` | connection string (`UseDevelopmentStorage=true` for Azurite) |
//! | `STORAGE_AZURE_CREDENTIAL` | `auto` | with no key/SAS: `managed-identity`, `workload-identity` or `developer` (Entra ID) |
//! | `STORAGE_ATTEMPT_TIMEOUT` | `30s` | bound on one request |
//! | `STORAGE_DEADLINE` | `2m` | bound on a whole operation, retries included |
//! | `STORAGE_MAX_ATTEMPTS` | `4` | attempts per operation, the first included; retryable errors of idempotent operations only |
//! | `STORAGE_RETRY_BACKOFF` | `100ms` | wait before the first retry; doubles per retry, 50% jitter |
//! | `STORAGE_RETRY_BACKOFF_MAX` | `5s` | longest wait between attempts |
//! | `STORAGE_PART_SIZE` | `8MiB` | streaming uploads' part size (≥ 5 MiB, multiple of 256 KiB) |
//! | `STORAGE_UPLOAD_CONCURRENCY` | `4` | parts in flight per upload |
//!
//! S3 credentials come from the AWS chain (`AWS_ACCESS_KEY_ID`, profiles, IMDS, ...).

mod config;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod conformance;
mod path;
mod retry;
mod upload;

#[cfg(feature = "storage-azure")]
mod azure;
#[cfg(feature = "storage-gcs")]
mod gcs;
#[cfg(feature = "storage-local")]
mod local;
#[cfg(feature = "storage-memory")]
mod memory;
#[cfg(feature = "storage-s3")]
mod s3;

pub use config::{AzureCredential, StorageBackend, StorageConfig};
pub use path::{MAX_KEY_LEN, ObjectPath};
pub use retry::RetryPolicy;
pub use upload::{ByteStream, GetStream, Part, Upload};

#[cfg(feature = "storage-azure")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-azure")))]
pub use azure::{AzureBuilder, AzureStorage};
#[cfg(feature = "storage-gcs")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-gcs")))]
pub use gcs::{GcsBuilder, GcsStorage};
#[cfg(feature = "storage-local")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-local")))]
pub use local::LocalStorage;
#[cfg(feature = "storage-memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-memory")))]
pub use memory::MemoryStorage;
#[cfg(feature = "storage-s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-s3")))]
pub use s3::{S3Builder, S3Storage};
mod backend;
mod builder;
#[cfg(any(
    feature = "storage-s3",
    feature = "storage-gcs",
    feature = "storage-azure"
))]
mod cloud;
mod handle;
mod listing;
mod object;
mod options;

pub use backend::*;
pub use builder::StorageBuilder;
#[cfg(any(
    feature = "storage-s3",
    feature = "storage-gcs",
    feature = "storage-azure"
))]
pub(crate) use cloud::*;
pub use handle::*;
#[allow(unused_imports)]
pub(crate) use listing::*;
pub use object::*;
pub use options::*;
