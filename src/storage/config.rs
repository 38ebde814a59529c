//! `STORAGE_*` configuration.

use super::{ObjectPath, RetryPolicy, Storage};
use crate::config::{self as cfg, ConfigIssue, EnvConfig, Secret};
use crate::{Error, Result};
use serde::Deserialize;
use std::time::Duration;

/// Which backend [`Storage::from_env`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// [`MemoryStorage`](super::MemoryStorage) (feature `storage-memory`).
    Memory,
    /// [`LocalStorage`](super::LocalStorage) (feature `storage-local`).
    Local,
    /// [`S3Storage`](super::S3Storage) (feature `storage-s3`).
    S3,
    /// [`GcsStorage`](super::GcsStorage) (feature `storage-gcs`).
    Gcs,
    /// [`AzureStorage`](super::AzureStorage) (feature `storage-azure`).
    Azure,
}

/// How Azure requests are authenticated when no key, SAS or connection string is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AzureCredential {
    /// Pick from what is set: connection string, account key, SAS token, else managed
    /// identity.
    #[default]
    Auto,
    /// Entra ID through the managed identity of the VM, App Service or AKS pod.
    ManagedIdentity,
    /// Entra ID through AKS workload identity (`AZURE_FEDERATED_TOKEN_FILE`, ...).
    WorkloadIdentity,
    /// Entra ID through the developer's `az` / `azd` login.
    Developer,
}

/// Storage settings; every field has the default listed in the [module docs](super).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct StorageConfig {
    /// `STORAGE_BACKEND`; when unset, taken from `STORAGE_URL`'s scheme, else `local`.
    pub backend: Option<StorageBackend>,
    /// `STORAGE_URL`: `file:///srv/data`, `memory://`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix`.
    pub url: Option<String>,
    /// `STORAGE_LOCAL_ROOT` (local backend).
    pub local_root: String,
    /// `STORAGE_BUCKET` (S3, GCS).
    pub bucket: Option<String>,
    /// `STORAGE_CONTAINER` (Azure).
    pub container: Option<String>,
    /// `STORAGE_PREFIX`: every key is scoped under it.
    pub prefix: Option<String>,
    /// `STORAGE_ENDPOINT`: an S3-compatible store (MinIO, SeaweedFS, R2) or an emulator.
    /// For GCS, `STORAGE_EMULATOR_HOST` is honoured too.
    pub endpoint: Option<String>,
    /// `STORAGE_REGION` (S3; default: the AWS chain's, else `us-east-1`).
    pub region: Option<String>,
    /// `STORAGE_GCS_CREDENTIALS_FILE`: a service-account key (default: application default
    /// credentials, `GOOGLE_APPLICATION_CREDENTIALS`).
    pub gcs_credentials_file: Option<String>,
    /// `STORAGE_AZURE_ACCOUNT` (default `AZURE_STORAGE_ACCOUNT`).
    pub azure_account: Option<String>,
    /// `STORAGE_AZURE_ACCESS_KEY` (default `AZURE_STORAGE_KEY`).
    pub azure_access_key: Option<Secret>,
    /// `STORAGE_AZURE_SAS_TOKEN` (default `AZURE_STORAGE_SAS_TOKEN`).
    pub azure_sas_token: Option<Secret>,
    /// `STORAGE_AZURE_CONNECTION_STRING` (default `AZURE_STORAGE_CONNECTION_STRING`).
    pub azure_connection_string: Option<Secret>,
    /// `STORAGE_AZURE_CREDENTIAL`: `auto`, `managed-identity`, `workload-identity`,
    /// `developer`.
    pub azure_credential: AzureCredential,
    /// `STORAGE_ATTEMPT_TIMEOUT`: bound on one request.
    #[serde(with = "cfg::duration")]
    pub attempt_timeout: Duration,
    /// `STORAGE_DEADLINE`: bound on a whole operation, retries included.
    #[serde(with = "cfg::duration")]
    pub deadline: Duration,
    /// `STORAGE_MAX_ATTEMPTS`: attempts per operation, the first included.
    pub max_attempts: u32,
    /// `STORAGE_RETRY_BACKOFF`: the wait before the first retry; doubles per retry.
    #[serde(with = "cfg::duration")]
    pub retry_backoff: Duration,
    /// `STORAGE_RETRY_BACKOFF_MAX`: the longest wait between attempts.
    #[serde(with = "cfg::duration")]
    pub retry_backoff_max: Duration,
    /// `STORAGE_PART_SIZE`: streaming uploads' part size.
    #[serde(with = "cfg::size")]
    pub part_size: u64,
    /// `STORAGE_UPLOAD_CONCURRENCY`: parts in flight per upload.
    pub upload_concurrency: usize,
    /// Which variable each setting came from (filled by the loader), for errors.
    #[serde(skip)]
    pub sources: cfg::Sources,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        Self {
            backend: None,
            url: None,
            local_root: "./data".to_owned(),
            bucket: None,
            container: None,
            prefix: None,
            endpoint: None,
            region: None,
            gcs_credentials_file: None,
            azure_account: None,
            azure_access_key: None,
            azure_sas_token: None,
            azure_connection_string: None,
            azure_credential: AzureCredential::Auto,
            attempt_timeout: policy.attempt_timeout,
            deadline: policy.deadline,
            max_attempts: policy.max_attempts,
            retry_backoff: policy.backoff.initial,
            retry_backoff_max: policy.backoff.max,
            part_size: super::DEFAULT_PART_SIZE as u64,
            upload_concurrency: 4,
            sources: cfg::Sources::default(),
        }
    }
}

/// What a `STORAGE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    backend: StorageBackend,
    /// Bucket, container, or the local root.
    location: Option<String>,
    prefix: Option<String>,
}

fn parse_url(url: &str) -> std::result::Result<Target, ConfigIssue> {
    let bad = || {
        ConfigIssue::new(
            "url",
            url,
            "file:///path, memory://, s3://bucket[/prefix], gs://bucket[/prefix] or \
             az://container[/prefix]",
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let backend = match scheme {
        "file" => StorageBackend::Local,
        "memory" => StorageBackend::Memory,
        "s3" | "s3a" => StorageBackend::S3,
        "gs" | "gcs" => StorageBackend::Gcs,
        "az" | "azure" | "abfs" => StorageBackend::Azure,
        _ => return Err(bad()),
    };
    if backend == StorageBackend::Local {
        // file://data names a host, not ./data: only file:///path (or file://localhost/path).
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.is_empty() && !path.starts_with('/') {
            return Err(ConfigIssue::new(
                "url",
                url,
                format!("file:///absolute/path (three slashes: file://{rest} names a host)"),
            ));
        }
        return Ok(Target {
            backend,
            location: (!path.is_empty()).then(|| cfg::percent_decode(path)),
            prefix: None,
        });
    }
    let (location, prefix) = match rest.split_once('/') {
        Some((l, p)) => (l, p.trim_matches('/')),
        None => (rest, ""),
    };
    if backend != StorageBackend::Memory && location.is_empty() {
        return Err(bad());
    }
    Ok(Target {
        backend,
        location: (!location.is_empty()).then(|| location.to_owned()),
        prefix: (!prefix.is_empty()).then(|| cfg::percent_decode(prefix)),
    })
}

impl EnvConfig for StorageConfig {
    const PREFIX: &'static str = "STORAGE_";
    fn sources_mut(&mut self) -> Option<&mut cfg::Sources> {
        Some(&mut self.sources)
    }
    const SECRETS: &'static [&'static str] = &[
        "azure_access_key",
        "azure_sas_token",
        "azure_connection_string",
    ];

    fn validate(&self) -> std::result::Result<(), ConfigIssue> {
        let target = self.url.as_deref().map(parse_url).transpose()?;
        if let (Some(b), Some(t)) = (self.backend, &target)
            && b != t.backend
        {
            return Err(ConfigIssue::new(
                "backend",
                format!("{b:?}").to_lowercase(),
                format!("the backend STORAGE_URL names ({:?}), or unset", t.backend).to_lowercase(),
            ));
        }
        if let Some(p) = target.as_ref().and_then(|t| t.prefix.as_ref())
            && ObjectPath::new(p).is_err()
        {
            return Err(ConfigIssue::new(
                "url",
                self.url.clone().unwrap_or_default(),
                "a URL whose path is a key prefix: '/'-separated segments, no '.' or '..'",
            ));
        }
        if let Some(p) = &self.prefix
            && ObjectPath::new(p).is_err()
        {
            return Err(ConfigIssue::new(
                "prefix",
                p,
                "a key prefix: '/'-separated segments, no '.', '..' or empty segments",
            ));
        }
        for (field, d) in [
            ("attempt_timeout", self.attempt_timeout),
            ("deadline", self.deadline),
        ] {
            if d.is_zero() {
                return Err(ConfigIssue::new(field, "0s", "a duration above zero"));
            }
        }
        cfg::check_retry(
            self.max_attempts,
            self.retry_backoff,
            self.retry_backoff_max,
        )?;
        let part = usize::try_from(self.part_size).unwrap_or(usize::MAX);
        if part < super::MIN_PART_SIZE || !part.is_multiple_of(256 * 1024) {
            return Err(ConfigIssue::new(
                "part_size",
                self.part_size.to_string(),
                "at least 5MiB, a multiple of 256KiB",
            ));
        }
        if self.upload_concurrency == 0 {
            return Err(ConfigIssue::new(
                "upload_concurrency",
                "0",
                "a number above 0",
            ));
        }
        let backend = self.resolved_backend();
        let named = target.as_ref().and_then(|t| t.location.clone());
        match backend {
            StorageBackend::S3 | StorageBackend::Gcs
                if named.is_none() && self.bucket.is_none() =>
            {
                Err(ConfigIssue::new(
                    "bucket",
                    "",
                    "a bucket name (or STORAGE_URL=s3://bucket / gs://bucket)",
                ))
            }
            StorageBackend::Azure if named.is_none() && self.container.is_none() => {
                Err(ConfigIssue::new(
                    "container",
                    "",
                    "a container name (or STORAGE_URL=az://container)",
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(any(feature = "storage-gcs", feature = "storage-azure"))]
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl StorageConfig {
    fn resolved_backend(&self) -> StorageBackend {
        let from_url = self
            .url
            .as_deref()
            .and_then(|u| parse_url(u).ok())
            .map(|t| t.backend);
        self.backend.or(from_url).unwrap_or(StorageBackend::Local)
    }

    /// Bucket, container or root from the URL, else the named field.
    fn location(&self, field: Option<&String>) -> Option<String> {
        self.url
            .as_deref()
            .and_then(|u| parse_url(u).ok())
            .and_then(|t| t.location)
            .or_else(|| field.cloned())
    }

    /// The key prefix: the URL's and `STORAGE_PREFIX` joined.
    fn key_prefix(&self) -> Result<Option<ObjectPath>> {
        let from_url = self
            .url
            .as_deref()
            .and_then(|u| parse_url(u).ok())
            .and_then(|t| t.prefix);
        let joined = match (from_url, &self.prefix) {
            (Some(a), Some(b)) => Some(format!("{a}/{b}")),
            (a, b) => a.or_else(|| b.clone()),
        };
        joined.map(|p| ObjectPath::new(&p)).transpose()
    }

    /// The retry policy these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
            .max_attempts(self.max_attempts)
            .backoff(self.retry_backoff, self.retry_backoff_max)
            .attempt_timeout(self.attempt_timeout)
            .deadline(self.deadline)
    }

    /// Builds the configured store (no request is made, except to fetch cloud credentials).
    ///
    /// # Errors
    /// `Config` for invalid settings or a backend whose feature is off.
    pub async fn build(&self) -> Result<Storage> {
        self.validate()
            .map_err(|issue| issue.into_error(Self::PREFIX, Self::SECRETS))?;
        let storage = self.backend_storage().await?;
        let storage = match self.origin() {
            Some(origin) => storage.with_origin(origin),
            None => storage,
        };
        let mut storage = storage
            .with_retry(self.retry_policy())
            .with_part_size(self.part_size as usize)?
            .with_upload_concurrency(self.upload_concurrency);
        if let Some(prefix) = self.key_prefix()? {
            storage = storage.scoped(&prefix)?;
        }
        Ok(storage)
    }

    /// Where a store outside the process is and which variables said so, for errors about
    /// reaching it: `S3 bucket "b" at http://host:8333 (address from STORAGE_ENDPOINT), from
    /// STORAGE_URL`. `None` for the memory store.
    fn origin(&self) -> Option<String> {
        let backend = self.resolved_backend();
        let (what, field, named) = match backend {
            StorageBackend::Memory => return None,
            StorageBackend::Local => (
                "local root",
                "local_root",
                self.location(None)
                    .unwrap_or_else(|| self.local_root.clone()),
            ),
            StorageBackend::S3 => (
                "S3 bucket",
                "bucket",
                self.location(self.bucket.as_ref()).unwrap_or_default(),
            ),
            StorageBackend::Gcs => (
                "GCS bucket",
                "bucket",
                self.location(self.bucket.as_ref()).unwrap_or_default(),
            ),
            StorageBackend::Azure => (
                "Azure container",
                "container",
                self.location(self.container.as_ref()).unwrap_or_default(),
            ),
        };
        // The variable that named the bucket (or root): the URL when it carries one.
        let url_names_it = self
            .url
            .as_deref()
            .and_then(|u| parse_url(u).ok())
            .is_some_and(|t| t.location.is_some());
        let field = if url_names_it { "url" } else { field };
        let from = match self.sources.variable(field) {
            Some(var) => format!("from {var}"),
            None => "set in code or defaulted".to_owned(),
        };
        let endpoint = match &self.endpoint {
            Some(e) if backend != StorageBackend::Local => format!(
                " at {} ({})",
                crate::config::redact_url(e),
                self.sources.describe("endpoint")
            ),
            _ => String::new(),
        };
        Some(format!("{what} {named:?}{endpoint}, {from}"))
    }

    #[allow(clippy::unused_async)]
    async fn backend_storage(&self) -> Result<Storage> {
        let backend = self.resolved_backend();
        match backend {
            #[cfg(feature = "storage-memory")]
            StorageBackend::Memory => Ok(Storage::new(super::MemoryStorage::new())),
            #[cfg(feature = "storage-local")]
            StorageBackend::Local => {
                let root = self
                    .location(None)
                    .unwrap_or_else(|| self.local_root.clone());
                Ok(Storage::new(super::LocalStorage::new(root)?))
            }
            #[cfg(feature = "storage-s3")]
            StorageBackend::S3 => {
                let bucket = self.location(self.bucket.as_ref()).unwrap_or_default();
                let mut b = super::S3Storage::builder(bucket).timeout(self.attempt_timeout);
                if let Some(e) = &self.endpoint {
                    b = b.endpoint(e.clone());
                }
                if let Some(r) = &self.region {
                    b = b.region(r.clone());
                }
                Ok(Storage::new(b.build().await?))
            }
            #[cfg(feature = "storage-gcs")]
            StorageBackend::Gcs => {
                let bucket = self.location(self.bucket.as_ref()).unwrap_or_default();
                let mut b = super::GcsStorage::builder(bucket).timeout(self.attempt_timeout);
                let emulator = env("STORAGE_EMULATOR_HOST").map(|h| {
                    if h.contains("://") {
                        h
                    } else {
                        format!("http://{h}")
                    }
                });
                if let Some(e) = self.endpoint.clone().or(emulator) {
                    b = b.endpoint(e);
                }
                if let Some(file) = &self.gcs_credentials_file {
                    b = b.key_file(file);
                }
                Ok(Storage::new(b.build().await?))
            }
            #[cfg(feature = "storage-azure")]
            StorageBackend::Azure => Ok(Storage::new(self.azure()?.build()?)),
            #[allow(unreachable_patterns)]
            other => Err(Error::config(format!(
                "STORAGE_BACKEND={}: build corekit with the cargo feature storage-{}",
                format!("{other:?}").to_lowercase(),
                format!("{other:?}").to_lowercase()
            ))),
        }
    }

    #[cfg(feature = "storage-azure")]
    fn azure(&self) -> Result<super::AzureBuilder> {
        use super::AzureStorage;
        let container = self.location(self.container.as_ref()).unwrap_or_default();
        // corekit's own STORAGE_AZURE_* settings first, then the standard AZURE_STORAGE_*
        // ones: an ambient variable never overrides an explicit setting.
        let own_credential = self.azure_connection_string.is_some()
            || self.azure_access_key.is_some()
            || self.azure_sas_token.is_some();
        let connection = match own_credential {
            true => self.azure_connection_string.clone(),
            false => env("AZURE_STORAGE_CONNECTION_STRING").map(Secret::new),
        };
        let mut b = match connection {
            Some(c) => AzureStorage::from_connection_string(c.expose(), container)?,
            None => {
                let account = self
                    .azure_account
                    .clone()
                    .or_else(|| env("AZURE_STORAGE_ACCOUNT"))
                    .ok_or_else(|| {
                        Error::config(
                            "STORAGE_AZURE_ACCOUNT (or AZURE_STORAGE_ACCOUNT) is not set: expected \
                             the storage account name",
                        )
                    })?;
                let mut b = AzureStorage::builder(account, container);
                let standard = |name: &str| (!own_credential).then(|| env(name)).flatten();
                let key = self
                    .azure_access_key
                    .clone()
                    .or_else(|| standard("AZURE_STORAGE_KEY").map(Secret::new));
                let sas = self
                    .azure_sas_token
                    .clone()
                    .or_else(|| standard("AZURE_STORAGE_SAS_TOKEN").map(Secret::new));
                if let Some(key) = key {
                    b = b.access_key(key.expose());
                } else if let Some(sas) = sas {
                    b = b.sas_token(sas.expose());
                } else {
                    b = b.token_credential(self.entra_credential()?);
                }
                b
            }
        };
        if let Some(e) = &self.endpoint {
            b = b.endpoint(e.clone());
        }
        Ok(b.timeout(self.attempt_timeout))
    }

    #[cfg(feature = "storage-azure")]
    fn entra_credential(
        &self,
    ) -> Result<std::sync::Arc<dyn azure_core::credentials::TokenCredential>> {
        let failed = |e: azure_core::Error| {
            Error::config(format!(
                "STORAGE_AZURE_CREDENTIAL={:?}: {e}",
                self.azure_credential
            ))
        };
        Ok(match self.azure_credential {
            AzureCredential::Auto | AzureCredential::ManagedIdentity => {
                azure_identity::ManagedIdentityCredential::new(None).map_err(failed)?
            }
            AzureCredential::WorkloadIdentity => {
                azure_identity::WorkloadIdentityCredential::new(None).map_err(failed)?
            }
            AzureCredential::Developer => {
                azure_identity::DeveloperToolsCredential::new(None).map_err(failed)?
            }
        })
    }
}

impl Storage {
    /// The store `STORAGE_*` describes (see [`StorageConfig`]).
    ///
    /// # Errors
    /// `Config` naming the variable and value at fault (secrets redacted).
    pub async fn from_env() -> Result<Self> {
        let config = StorageConfig::from_env()?;
        crate::config::warn_if_defaulted(
            StorageConfig::PREFIX,
            "objects are written under ./data on this machine's disk",
            "STORAGE_URL=s3://bucket, gs://bucket, az://container or file:///path",
        );
        config.build().await
    }

    /// The store `config` describes.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub async fn from_config(config: &StorageConfig) -> Result<Self> {
        config.build().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<StorageConfig> {
        StorageConfig::from_vars(
            "STORAGE_",
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn urls_name_backend_location_and_prefix() {
        let t = parse_url("s3://media/tenants/a").unwrap();
        assert_eq!(
            (t.backend, t.location.as_deref(), t.prefix.as_deref()),
            (StorageBackend::S3, Some("media"), Some("tenants/a"))
        );
        let t = parse_url("file:///srv/data%20dir").unwrap();
        assert_eq!(
            (t.backend, t.location.as_deref()),
            (StorageBackend::Local, Some("/srv/data dir"))
        );
        assert_eq!(parse_url("az://c").unwrap().backend, StorageBackend::Azure);
        assert_eq!(
            parse_url("memory://").unwrap().backend,
            StorageBackend::Memory
        );
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("gs://").is_err());
        // file://data names a host: refused rather than read as ./data.
        let e = parse_url("file://data").unwrap_err();
        assert!(
            e.into_error("STORAGE_", &[])
                .to_string()
                .contains("three slashes")
        );
        assert_eq!(
            parse_url("file://localhost/srv/x")
                .unwrap()
                .location
                .as_deref(),
            Some("/srv/x")
        );
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let e = load(&[("STORAGE_URL", "ftp://x")]).unwrap_err();
        assert!(e.to_string().contains("STORAGE_URL=\"ftp://x\""), "{e}");
        let e = load(&[("STORAGE_BACKEND", "s3")]).unwrap_err();
        assert!(e.to_string().contains("STORAGE_BUCKET"), "{e}");
        let e = load(&[("STORAGE_BACKEND", "gcs"), ("STORAGE_URL", "s3://b")]).unwrap_err();
        assert!(e.to_string().contains("STORAGE_BACKEND"), "{e}");
        let e = load(&[("STORAGE_PART_SIZE", "1MiB")]).unwrap_err();
        // Issue 14 #9: the value as written, not as parsed.
        assert!(e.to_string().contains(r#"STORAGE_PART_SIZE="1MiB""#), "{e}");
        let e = load(&[("STORAGE_PREFIX", "a/../b")]).unwrap_err();
        assert!(e.to_string().contains("STORAGE_PREFIX"), "{e}");
        let e = load(&[("STORAGE_URL", "s3://bucket/a/../b")]).unwrap_err();
        assert!(e.to_string().contains("STORAGE_URL"), "{e}");
        let e = load(&[("STORAGE_BACKEND", "floppy")]).unwrap_err();
        assert!(e.to_string().contains("STORAGE_BACKEND"), "{e}");
        let e = load(&[
            ("STORAGE_AZURE_ACCESS_KEY", "hunter2"),
            ("STORAGE_DEADLINE", "0s"),
        ])
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[cfg(all(feature = "storage-memory", feature = "storage-local"))]
    #[tokio::test]
    async fn builds_scoped_stores_with_the_policy() {
        let c = load(&[
            ("STORAGE_URL", "memory:///tenant-a"),
            ("STORAGE_MAX_ATTEMPTS", "2"),
        ])
        .unwrap();
        let s = c.build().await.unwrap();
        assert_eq!(s.backend_name(), "memory");
        assert_eq!(s.prefix().map(ObjectPath::as_str), Some("tenant-a"));
        assert_eq!(s.retry_policy().max_attempts, 2);
        let dir = std::env::temp_dir().join(format!("corekit-cfg-{}", fastrand::u64(..)));
        let c = load(&[("STORAGE_LOCAL_ROOT", dir.to_str().unwrap())]).unwrap();
        let s = c.build().await.unwrap();
        assert_eq!(s.backend_name(), "local");
        let _ = std::fs::remove_dir_all(dir);
    }
}
