//! Azure Blob Storage on azure_storage_blob (block blobs).

mod backend;
mod sas;
mod upload;

use sas::*;
use upload::AzureUpload;

use super::{
    Backend, BoxFuture, BoxStream, ByteRange, Capabilities, GetOptions, GetResult, GetStream,
    ListResult, ObjectMeta, ObjectPath, PRESIGN_MAX, Page, Paged, Part, PresignMethod,
    PresignedRequest, PutMode, PutOptions, Upload, Version, encode_key, one_level, timed, written,
};
use crate::config::Secret;
use crate::{Error, ErrorKind, Result};
use azure_core::credentials::TokenCredential;
use azure_core::http::{Etag, RequestContent, Url};
use azure_core::time::OffsetDateTime;
use azure_storage_blob::models::{
    BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders,
    BlobClientStartCopyFromUrlResultHeaders, BlobClientUploadOptions,
    BlobContainerClientListBlobsOptions, BlockBlobClientCommitBlockListOptions,
    BlockBlobClientCommitBlockListResultHeaders, BlockLookupList, CopyStatus, HttpRange,
    ListBlobsIncludeItem,
};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};
use bytes::Bytes;
use futures_util::TryStreamExt;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZero;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Azurite's well-known development account.
const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public; it opens nothing but a local emulator).
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The SAS version corekit signs.
const SAS_VERSION: &str = "2022-11-02";
/// How long the account SAS signed for each request stays valid; re-signed at half-life.
const ACCOUNT_SAS_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Clone)]
enum Auth {
    /// An account key: corekit signs account SAS tokens (and presigned URLs) with it.
    Key(Secret),
    /// A fixed SAS token (no presigning).
    Sas(Secret),
    /// Entra ID tokens (no presigning).
    Token(Arc<dyn TokenCredential>),
    /// Nothing (public containers).
    Anonymous,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Key(_) => "account key",
            Auth::Sas(_) => "SAS token",
            Auth::Token(_) => "Entra ID",
            Auth::Anonymous => "anonymous",
        })
    }
}

/// Builds an [`AzureStorage`]; from [`AzureStorage::builder`] or
/// [`AzureStorage::from_connection_string`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AzureBuilder {
    account: String,
    container: String,
    endpoint: Option<String>,
    auth: Auth,
    timeout: Duration,
    page_size: i32,
}

impl AzureBuilder {
    /// The account's blob endpoint (default `https://<account>.blob.core.windows.net`; Azurite:
    /// `http://127.0.0.1:10000/devstoreaccount1`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Authenticates with the account key (base64, as the portal shows it).
    pub fn access_key(mut self, key: impl Into<String>) -> Self {
        self.auth = Auth::Key(Secret::new(key));
        self
    }

    /// Authenticates with a SAS token (`sv=...&sig=...`, with or without the leading `?`).
    pub fn sas_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Sas(Secret::new(token.into().trim_start_matches('?')));
        self
    }

    /// Authenticates with Entra ID tokens from `credential` (`azure_identity`'s
    /// `ManagedIdentityCredential`, `DeveloperToolsCredential`, ...). HTTPS only.
    pub fn token_credential(mut self, credential: Arc<dyn TokenCredential>) -> Self {
        self.auth = Auth::Token(credential);
        self
    }

    /// Azurite's development account (`UseDevelopmentStorage=true`) on `endpoint`.
    pub fn development(mut self, endpoint: impl Into<String>) -> Self {
        self.account = DEV_ACCOUNT.to_owned();
        self.auth = Auth::Key(Secret::new(DEV_KEY));
        self.endpoint(endpoint)
    }

    /// Bound on one call (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Blobs per listing request (default 5000, Azure's maximum).
    pub fn page_size(mut self, n: u16) -> Self {
        self.page_size = i32::from(n.clamp(1, 5000));
        self
    }

    /// The store (no request is made).
    ///
    /// # Errors
    /// `Config` for an endpoint that is no URL, or an Entra ID credential over plain HTTP.
    pub fn build(self) -> Result<AzureStorage> {
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}.blob.core.windows.net", self.account));
        let container_url = format!("{endpoint}/{}", encode_key(&self.container));
        let url = Url::parse(&container_url)
            .map_err(|e| Error::config(format!("Azure endpoint {endpoint:?}: {e}")))?;
        let mut options = BlobContainerClientOptions::default();
        // Retries and deadlines are the Storage handle's, so the SDK's own are off.
        options.client_options.retry = azure_core::http::RetryOptions::none();
        let query = match &self.auth {
            Auth::Key(key) => Some(QueryAuth::Key {
                account: self.account.clone(),
                key: key.clone(),
                cached: Mutex::new(None),
            }),
            Auth::Sas(token) => Some(QueryAuth::Fixed(token.clone())),
            Auth::Token(_) | Auth::Anonymous => None,
        }
        .map(Arc::new);
        if let Some(q) = &query {
            options
                .client_options
                .per_call_policies
                .push(Arc::new(SasPolicy(q.clone())));
        }
        let credential = match &self.auth {
            Auth::Token(c) => Some(c.clone()),
            _ => None,
        };
        let client = BlobContainerClient::new(url.clone(), credential, Some(options))
            .map_err(|e| Error::config(format!("Azure container {container_url}: {e}")))?;
        Ok(AzureStorage {
            inner: Arc::new(Inner {
                client,
                url,
                account: self.account,
                container: self.container,
                query,
                presign_key: match self.auth {
                    Auth::Key(k) => Some(k),
                    _ => None,
                },
                timeout: self.timeout,
                page_size: self.page_size,
            }),
        })
    }
}

/// Azure Blob Storage (block blobs) through the official `azure_storage_blob`. Versions are
/// ETags; create-only is `If-None-Match: *`, compare-and-swap `If-Match`. Streaming uploads
/// stage blocks and commit the list (the put's condition goes on the commit). With an account
/// key, every request carries a short-lived account SAS corekit signs, and presigned URLs are
/// blob-scoped service SAS; listing with a delimiter is computed from the flat listing (the SDK
/// has no hierarchical listing), so it reads every key under the prefix.
///
/// Known limits: Azure keeps one list of uncommitted blocks per blob, so two streaming uploads
/// to the same key at once (or a put to a key while a streaming upload to it runs) can make
/// the later commit fail (`InvalidBlockList`); a copy that the service runs asynchronously must
/// finish within the handle's attempt timeout. A suffix range reads the size first and pins the
/// download to that version (a change in between is a retryable `Conflict`).
#[derive(Clone)]
pub struct AzureStorage {
    inner: Arc<Inner>,
}

struct Inner {
    client: BlobContainerClient,
    url: Url,
    account: String,
    container: String,
    query: Option<Arc<QueryAuth>>,
    presign_key: Option<Secret>,
    timeout: Duration,
    page_size: i32,
}

impl std::fmt::Debug for AzureStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureStorage")
            .field("account", &self.inner.account)
            .field("container", &self.inner.container)
            .finish_non_exhaustive()
    }
}

fn azure_error(e: azure_core::Error, what: String) -> Error {
    use azure_core::error::ErrorKind as K;
    let status = e.http_status().map(u16::from);
    let code = match e.kind() {
        K::HttpResponse { error_code, .. } => error_code.clone().unwrap_or_default(),
        _ => String::new(),
    };
    let (kind, retryable) = match (status, e.kind()) {
        (Some(404), _) => (ErrorKind::NotFound, false),
        (Some(412 | 304), _) => (ErrorKind::PreconditionFailed, false),
        (Some(409), _) if code == "BlobAlreadyExists" => (ErrorKind::AlreadyExists, false),
        (Some(409), _) => (ErrorKind::Conflict, true),
        (Some(416), _) => (ErrorKind::InvalidInput, false),
        (Some(401 | 403), _) => (ErrorKind::PermissionDenied, false),
        (Some(408 | 429 | 500..=599), _) => (ErrorKind::Unavailable, true),
        (None, K::Io | K::Connection) => (ErrorKind::Unavailable, true),
        (None, K::Credential) => (ErrorKind::PermissionDenied, false),
        _ => (ErrorKind::Backend, false),
    };
    let detail = if code.is_empty() {
        crate::error::chain_text(&e)
    } else {
        format!("{code} (HTTP {})", status.unwrap_or_default())
    };
    Error::new(kind, format!("{what}: {detail}"))
        .with_backend("azure")
        .with_retryable(retryable)
        .with_source(e)
}

fn conditions(mode: &PutMode) -> (Option<Etag>, Option<Etag>) {
    match mode {
        PutMode::Overwrite => (None, None),
        PutMode::Create => (None, Some(Etag::from("*"))),
        PutMode::IfMatch(v) => (Some(Etag::from(v.0.as_str())), None),
    }
}

fn to_system_time(t: Option<OffsetDateTime>) -> SystemTime {
    super::unix_nanos_time(t.map(|t| t.unix_timestamp_nanos()))
}

fn version(etag: Option<Etag>) -> Version {
    Version(etag.map(|e| e.to_string()).unwrap_or_default())
}

fn metadata_map(m: HashMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().collect()
}

/// Azure metadata names are C# identifiers: no `-` (corekit allows it elsewhere).
fn check_metadata(options: &PutOptions) -> Result<()> {
    match options
        .metadata
        .keys()
        .find(|k| k.contains('-') || k.starts_with(|c: char| c.is_ascii_digit()))
    {
        Some(k) => Err(Error::invalid_input(format!(
            "metadata key {k:?}: Azure names must be identifiers (letters, digits, '_'; \
             not starting with a digit)"
        ))
        .with_backend("azure")),
        None => Ok(()),
    }
}

/// Single requests for bodies up to this size (the SDK would otherwise stage 4 MiB blocks).
const SINGLE_PUT_LIMIT: u64 = 256 * 1024 * 1024;

impl AzureStorage {
    /// A builder for `container` in `account` (no credentials until one is set).
    pub fn builder(account: impl Into<String>, container: impl Into<String>) -> AzureBuilder {
        AzureBuilder {
            account: account.into(),
            container: container.into(),
            endpoint: None,
            auth: Auth::Anonymous,
            timeout: Duration::from_secs(30),
            page_size: 5000,
        }
    }

    /// A builder from a connection string (`AccountName=..;AccountKey=..`, `BlobEndpoint=..;
    /// SharedAccessSignature=..`, or `UseDevelopmentStorage=true`) for `container`.
    ///
    /// # Errors
    /// `Config` naming the missing part (the string itself is never echoed: it holds a key).
    pub fn from_connection_string(
        connection_string: &str,
        container: impl Into<String>,
    ) -> Result<AzureBuilder> {
        let parts: HashMap<String, String> = connection_string
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let container = container.into();
        if parts
            .get("usedevelopmentstorage")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            let endpoint = parts
                .get("developmentstorageproxyuri")
                .map(|u| format!("{}/{DEV_ACCOUNT}", u.trim_end_matches('/')))
                .unwrap_or_else(|| format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"));
            return Ok(Self::builder(DEV_ACCOUNT, container).development(endpoint));
        }
        let endpoint = parts.get("blobendpoint").cloned();
        let account = parts.get("accountname").cloned().or_else(|| {
            // https://<account>.blob.core.windows.net
            endpoint
                .as_deref()
                .and_then(|e| e.split("://").nth(1))
                .and_then(|h| h.split('.').next())
                .map(str::to_owned)
        });
        let Some(account) = account else {
            return Err(Error::config(
                "Azure connection string: neither AccountName nor BlobEndpoint is set",
            ));
        };
        let mut builder = Self::builder(account.clone(), container);
        builder.endpoint = Some(match endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => {
                let protocol = parts
                    .get("defaultendpointsprotocol")
                    .map_or("https", String::as_str);
                let suffix = parts
                    .get("endpointsuffix")
                    .map_or("core.windows.net", String::as_str);
                format!("{protocol}://{account}.blob.{suffix}")
            }
        });
        if let Some(key) = parts.get("accountkey") {
            builder = builder.access_key(key.clone());
        } else if let Some(sas) = parts.get("sharedaccesssignature") {
            builder = builder.sas_token(sas.clone());
        } else {
            return Err(Error::config(
                "Azure connection string: neither AccountKey nor SharedAccessSignature is set",
            ));
        }
        Ok(builder)
    }

    /// The container this store reads and writes.
    pub fn container(&self) -> &str {
        &self.inner.container
    }

    /// The SDK's container client.
    pub fn client(&self) -> &BlobContainerClient {
        &self.inner.client
    }

    /// Creates the container if it does not exist.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn ensure_container(&self) -> Result<()> {
        match self.inner.client.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status().map(u16::from) == Some(409) => Ok(()),
            Err(e) => Err(azure_error(
                e,
                format!("creating container {}", self.inner.container),
            )),
        }
    }

    fn blob(&self, path: &ObjectPath) -> BlobClient {
        self.inner.client.blob_client(path.as_str())
    }

    async fn properties(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let r = self
            .blob(path)
            .get_properties(None)
            .await
            .map_err(|e| azure_error(e, format!("head of {path}")))?;
        let header = |e: azure_core::Error| azure_error(e, format!("head of {path}"));
        Ok(ObjectMeta {
            path: path.clone(),
            size: r.content_length().map_err(header)?.unwrap_or(0),
            last_modified: to_system_time(r.last_modified().map_err(header)?),
            version: version(r.etag().map_err(header)?),
            content_type: r.content_type().map_err(header)?,
            cache_control: r.cache_control().map_err(header)?,
            content_disposition: r.content_disposition().map_err(header)?,
            metadata: metadata_map(r.metadata().map_err(header)?),
        })
    }

    /// Sends the download: metadata, the range served, and the body.
    async fn open(
        &self,
        path: &ObjectPath,
        options: &GetOptions,
    ) -> Result<(
        ObjectMeta,
        std::ops::Range<u64>,
        azure_core::http::AsyncResponseBody,
    )> {
        let what = || format!("getting {path}");
        // A suffix needs the size first (the SDK's ranges are offset-based); the download is
        // then pinned to the version that size belongs to.
        let mut pinned = None;
        let range = match options.range {
            Some(ByteRange::Suffix(n)) => {
                let meta = self.properties(path).await?;
                let r = ByteRange::Suffix(n).resolve(meta.size)?;
                pinned = Some(meta.version);
                (!r.is_empty()).then_some(ByteRange::Bounded(r.start, r.end))
            }
            other => other,
        };
        let http_range = match range {
            Some(ByteRange::Bounded(a, b)) if a >= b => {
                return Err(Error::invalid_input(format!("empty range {a}..{b}")));
            }
            Some(ByteRange::Bounded(a, b)) => Some(HttpRange::new(a, b - a)),
            Some(ByteRange::Offset(a)) => Some(HttpRange::from_offset(a)),
            _ => None,
        };
        let pin_is_ours = options.if_match.is_none() && pinned.is_some();
        let if_match = options.if_match.as_ref().or(pinned.as_ref());
        let download = BlobClientDownloadOptions {
            range: http_range,
            if_match: if_match.map(|v| Etag::from(v.0.as_str())),
            if_none_match: options
                .if_none_match
                .as_ref()
                .map(|v| Etag::from(v.0.as_str())),
            // One request for the whole range: corekit streams it.
            partition_size: NonZero::new(usize::MAX >> 1),
            ..Default::default()
        };
        let got = self
            .blob(path)
            .download(Some(download))
            .await
            .map_err(|e| {
                let e = azure_error(e, what());
                if pin_is_ours && e.kind() == ErrorKind::PreconditionFailed {
                    // Replaced between reading its size and its bytes: read again.
                    Error::new(
                        ErrorKind::Conflict,
                        format!("{path}: the object changed while it was read"),
                    )
                    .with_backend("azure")
                    .with_retryable(true)
                    .with_source(e)
                } else {
                    e
                }
            })?;
        let p = &got.properties;
        let length = p.content_length.unwrap_or(0);
        let content_range = got
            .headers
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                "content-range",
            ))
            .and_then(super::parse_content_range);
        let (served, size) = content_range.unwrap_or((0..length, length));
        // Azurite answers a range starting at the end with an empty body, not 416.
        if let Some(r) = options.range {
            r.resolve(size)?;
        }
        let meta = ObjectMeta {
            path: path.clone(),
            size,
            last_modified: to_system_time(p.last_modified),
            version: version(p.etag.clone()),
            content_type: p.content_type.clone(),
            cache_control: p.cache_control.clone(),
            content_disposition: p.content_disposition.clone(),
            metadata: metadata_map(p.metadata.clone()),
        };
        Ok((meta, served, got.body))
    }

    /// The blob's URL without credentials.
    fn blob_url(&self, path: &ObjectPath) -> String {
        format!("{}/{}", self.inner.url, encode_key(path.as_str()))
    }
}

/// The flat listing only: the SDK has no delimiter, so `delimited` is computed by the caller.
impl Paged for AzureStorage {
    fn page<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
        _delimited: bool,
        token: Option<String>,
    ) -> BoxFuture<'a, Result<Page>> {
        Box::pin(async move {
            let options = BlobContainerClientListBlobsOptions {
                prefix: prefix.map(|p| format!("{}/", p.as_str())),
                include: Some(vec![ListBlobsIncludeItem::Metadata]),
                maxresults: Some(self.inner.page_size),
                marker: token,
                ..Default::default()
            };
            let pager = self
                .inner
                .client
                .list_blobs(Some(options))
                .map_err(|e| azure_error(e, "listing".into()))?;
            let mut pages = pager.into_pages();
            let Some(page) = timed(self.inner.timeout, "Azure list", async {
                pages
                    .try_next()
                    .await
                    .map_err(|e| azure_error(e, "listing".into()))
            })
            .await?
            else {
                return Ok(Page::default());
            };
            let page = page
                .into_model()
                .map_err(|e| azure_error(e, "reading a listing".into()))?;
            let objects = page
                .blob_items
                .into_iter()
                .filter_map(|item| {
                    let path = ObjectPath::new(item.name.as_deref()?).ok()?;
                    if start_after.is_some_and(|a| path <= *a) {
                        return None;
                    }
                    let p = item.properties.unwrap_or_default();
                    Some(ObjectMeta {
                        path,
                        size: p.content_length.unwrap_or(0),
                        last_modified: to_system_time(p.last_modified),
                        version: version(p.etag),
                        content_type: p.content_type,
                        cache_control: p.cache_control,
                        content_disposition: p.content_disposition,
                        metadata: item
                            .metadata
                            .and_then(|m| m.values)
                            .map(metadata_map)
                            .unwrap_or_default(),
                    })
                })
                .collect();
            Ok(Page {
                objects,
                prefixes: Vec::new(),
                next: page.next_marker,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let dev = AzureStorage::from_connection_string("UseDevelopmentStorage=true", "c").unwrap();
        assert_eq!(dev.account, DEV_ACCOUNT);
        assert_eq!(
            dev.endpoint.as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        let real = AzureStorage::from_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=a2V5;EndpointSuffix=core.windows.net",
            "c",
        )
        .unwrap();
        assert_eq!(
            real.endpoint.as_deref(),
            Some("https://acme.blob.core.windows.net")
        );
        assert!(matches!(real.auth, Auth::Key(_)));
        let e = AzureStorage::from_connection_string("AccountName=acme", "c").unwrap_err();
        assert!(e.to_string().contains("AccountKey"), "{e}");
    }

    #[test]
    fn sas_dates_and_encoding() {
        let t = UNIX_EPOCH + Duration::from_secs(1_764_504_000);
        assert_eq!(iso8601(t), "2025-11-30T12:00:00Z");
        let q = account_sas("a", &Secret::new(DEV_KEY), t).unwrap();
        assert!(
            q.starts_with("sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&se=2025-11-30T12%3A00%3A00Z&sig=")
        );
        assert!(
            !q.contains('+') && !q.contains('/'),
            "signature is encoded: {q}"
        );
    }
}
