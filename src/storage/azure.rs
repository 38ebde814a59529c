//! Azure Blob Storage on azure_storage_blob (block blobs).

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

/// Query-string authentication added to every request.
enum QueryAuth {
    Key {
        account: String,
        key: Secret,
        cached: Mutex<Option<(Instant, String)>>,
    },
    Fixed(Secret),
}

impl QueryAuth {
    fn query(&self) -> Result<String> {
        match self {
            QueryAuth::Fixed(token) => Ok(token.expose().to_owned()),
            QueryAuth::Key {
                account,
                key,
                cached,
            } => {
                let mut cached = cached.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((at, q)) = cached.as_ref()
                    && at.elapsed() < ACCOUNT_SAS_LIFETIME / 2
                {
                    return Ok(q.clone());
                }
                let q = account_sas(account, key, SystemTime::now() + ACCOUNT_SAS_LIFETIME)?;
                *cached = Some((Instant::now(), q.clone()));
                Ok(q)
            }
        }
    }
}

/// Appends the SAS to each request's query string.
struct SasPolicy(Arc<QueryAuth>);

impl std::fmt::Debug for SasPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SasPolicy")
    }
}

#[async_trait::async_trait]
impl azure_core::http::policies::Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &azure_core::http::Context,
        request: &mut azure_core::http::Request,
        next: &[Arc<dyn azure_core::http::policies::Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        let query = self.0.query().map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.to_string())
        })?;
        append_query(request.url_mut(), &query);
        match next.split_first() {
            Some((policy, rest)) => policy.send(ctx, request, rest).await,
            None => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "no transport policy after the SAS policy",
            )),
        }
    }
}

fn append_query(url: &mut Url, query: &str) {
    let combined = match url.query() {
        Some(q) if !q.is_empty() => format!("{q}&{query}"),
        _ => query.to_owned(),
    };
    url.set_query(Some(&combined));
}

/// `2026-11-30T12:00:00Z`.
fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let t = OffsetDateTime::from_unix_timestamp(secs as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn sign(key: &Secret, string_to_sign: &str) -> Result<String> {
    let key = azure_core::credentials::Secret::new(key.expose().to_owned());
    azure_core::hmac::hmac_sha256(string_to_sign, &key)
        .map_err(|e| Error::config(format!("Azure account key is not base64: {e}")))
}

fn encode_query_value(v: &str) -> String {
    super::percent_encode(v, false)
}

/// An account SAS for the blob service: containers and objects, read/write/delete/list/add/
/// create, until `expiry`.
fn account_sas(account: &str, key: &Secret, expiry: SystemTime) -> Result<String> {
    let (sp, ss, srt, se) = ("rwdlac", "b", "sco", iso8601(expiry));
    let to_sign = format!("{account}\n{sp}\n{ss}\n{srt}\n\n{se}\n\n\n{SAS_VERSION}\n\n");
    let sig = sign(key, &to_sign)?;
    Ok(format!(
        "sv={SAS_VERSION}&ss={ss}&srt={srt}&sp={sp}&se={}&sig={}",
        encode_query_value(&se),
        encode_query_value(&sig)
    ))
}

/// A service SAS for one blob.
fn blob_sas(
    account: &str,
    container: &str,
    blob: &str,
    permissions: &str,
    key: &Secret,
    expiry: SystemTime,
) -> Result<String> {
    let se = iso8601(expiry);
    let resource = format!("/blob/{account}/{container}/{blob}");
    // sp, st, se, resource, si, sip, spr, sv, sr, snapshot, ses, rscc, rscd, rsce, rscl, rsct.
    let to_sign =
        format!("{permissions}\n\n{se}\n{resource}\n\n\n\n{SAS_VERSION}\nb\n\n\n\n\n\n\n");
    let sig = sign(key, &to_sign)?;
    Ok(format!(
        "sv={SAS_VERSION}&sr=b&sp={permissions}&se={}&sig={}",
        encode_query_value(&se),
        encode_query_value(&sig)
    ))
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

impl Backend for AzureStorage {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            create_only: true,
            if_match: true,
            multipart: true,
            presign: self.inner.presign_key.as_ref().map(|_| PRESIGN_MAX),
        }
    }

    fn put<'a>(
        &'a self,
        path: &'a ObjectPath,
        bytes: Bytes,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<ObjectMeta>> {
        Box::pin(timed(self.inner.timeout, "Azure put", async move {
            check_metadata(options)?;
            let size = bytes.len() as u64;
            let (if_match, if_none_match) = conditions(&options.mode);
            let upload = BlobClientUploadOptions {
                blob_content_type: options.content_type.clone(),
                blob_cache_control: options.cache_control.clone(),
                blob_content_disposition: options.content_disposition.clone(),
                metadata: (!options.metadata.is_empty())
                    .then(|| options.metadata.clone().into_iter().collect()),
                if_match,
                if_none_match,
                partition_size: NonZero::new(SINGLE_PUT_LIMIT),
                ..Default::default()
            };
            let out = self
                .blob(path)
                .upload(RequestContent::from(bytes.to_vec()), Some(upload))
                .await
                .map_err(|e| {
                    options
                        .mode
                        .lost_race(azure_error(e, format!("putting {path}")), path)
                })?;
            Ok(written(path, size, version(out.etag), options))
        }))
    }

    fn get<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetResult>> {
        Box::pin(timed(self.inner.timeout, "Azure get", async move {
            let (meta, range, body) = self.open(path, options).await?;
            let bytes = body
                .collect()
                .await
                .map_err(|e| azure_error(e, format!("reading {path}")))?;
            Ok(GetResult { meta, bytes, range })
        }))
    }

    fn get_stream<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetStream>> {
        Box::pin(timed(self.inner.timeout, "Azure get", async move {
            let (meta, range, body) = self.open(path, options).await?;
            let what = format!("reading {path}");
            let stream = body.map_err(move |e| azure_error(e, what.clone()));
            Ok(GetStream::new(meta, range, stream))
        }))
    }

    fn head<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<ObjectMeta>> {
        Box::pin(timed(
            self.inner.timeout,
            "Azure head",
            self.properties(path),
        ))
    }

    fn delete<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed(self.inner.timeout, "Azure delete", async move {
            match self.blob(path).delete(None).await {
                Ok(_) => Ok(()),
                Err(e) if e.http_status().map(u16::from) == Some(404) => Ok(()),
                Err(e) => Err(azure_error(e, format!("deleting {path}"))),
            }
        }))
    }

    fn list<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        self.list_pages(prefix, start_after)
    }

    fn list_stream(&self, prefix: Option<ObjectPath>) -> BoxStream<'_, Result<ObjectMeta>> {
        self.stream_pages(prefix)
    }

    fn list_with_delimiter<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<ListResult>> {
        Box::pin(async move { Ok(one_level(self.list(prefix, None).await?, prefix)) })
    }

    fn copy<'a>(&'a self, from: &'a ObjectPath, to: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed(self.inner.timeout, "Azure copy", async move {
            let mut source = self.blob_url(from);
            if let Some(q) = &self.inner.query {
                source = format!("{source}?{}", q.query()?);
            }
            let target = self.blob(to);
            let started = target
                .start_copy_from_url(source, None)
                .await
                .map_err(|e| azure_error(e, format!("copying {from}")))?;
            let mut status = started
                .copy_status()
                .map_err(|e| azure_error(e, format!("copying {from}")))?;
            // Copies within an account are usually done at once; larger ones are polled.
            let mut wait = Duration::from_millis(50);
            while status == Some(CopyStatus::Pending) {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
                let props = target
                    .get_properties(None)
                    .await
                    .map_err(|e| azure_error(e, format!("copying {from}")))?;
                status = props
                    .copy_status()
                    .map_err(|e| azure_error(e, format!("copying {from}")))?;
            }
            match status {
                None | Some(CopyStatus::Success) => Ok(()),
                Some(other) => Err(Error::new(
                    ErrorKind::Backend,
                    format!("copying {from} to {to} ended {other:?}"),
                )
                .with_backend("azure")),
            }
        }))
    }

    fn start_upload<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<Option<Box<dyn Upload>>>> {
        if let Err(e) = check_metadata(options) {
            return Box::pin(std::future::ready(Err(e)));
        }
        Box::pin(std::future::ready(Ok(Some(Box::new(AzureUpload {
            blob: self.blob(path),
            path: path.clone(),
            options: options.clone(),
            // A random prefix keeps this upload's block ids distinct from another's; Azure still
            // drops all uncommitted blocks of the blob when either one commits.
            id: fastrand::u64(..),
            blocks: Mutex::default(),
            timeout: self.inner.timeout,
        }) as Box<dyn Upload>))))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(timed(self.inner.timeout, "Azure ping", async move {
            self.inner
                .client
                .get_properties(None)
                .await
                .map(drop)
                .map_err(|e| azure_error(e, format!("container {}", self.inner.container)))
        }))
    }

    fn presign<'a>(
        &'a self,
        method: PresignMethod,
        path: &'a ObjectPath,
        expires: Duration,
    ) -> BoxFuture<'a, Result<PresignedRequest>> {
        Box::pin(async move {
            let Some(key) = &self.inner.presign_key else {
                return Err(Error::unsupported(
                    "azure",
                    "presign",
                    "presigned URLs need the account key (user delegation SAS is not implemented)",
                ));
            };
            let permissions = match method {
                PresignMethod::Get => "r",
                PresignMethod::Put => "cw",
            };
            let sas = blob_sas(
                &self.inner.account,
                &self.inner.container,
                path.as_str(),
                permissions,
                key,
                SystemTime::now() + expires,
            )?;
            let mut request =
                PresignedRequest::new(method, format!("{}?{sas}", self.blob_url(path)));
            if method == PresignMethod::Put {
                // Put Blob needs the blob type; the signature does not cover it.
                request.headers = vec![("x-ms-blob-type".to_owned(), "BlockBlob".to_owned())];
            }
            Ok(request)
        })
    }
}

/// A block-blob upload: each part is a staged block, `complete` commits the list.
struct AzureUpload {
    blob: BlobClient,
    path: ObjectPath,
    options: PutOptions,
    id: u64,
    blocks: Mutex<BTreeMap<u32, Vec<u8>>>,
    timeout: Duration,
}

impl Upload for AzureUpload {
    fn put_part(&self, part: Part) -> BoxFuture<'_, Result<()>> {
        let what = format!("Azure stage block {}", part.index);
        Box::pin(crate::error::bounded(self.timeout, || what, async move {
            let block_id = format!("{:016x}-{:08}", self.id, part.index).into_bytes();
            let len = part.bytes.len() as u64;
            self.blob
                .block_blob_client()
                .stage_block(
                    &block_id,
                    len,
                    RequestContent::from(part.bytes.to_vec()),
                    None,
                )
                .await
                .map_err(|e| {
                    azure_error(e, format!("staging block {} of {}", part.index, self.path))
                })?;
            self.blocks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(part.index, block_id);
            Ok(())
        }))
    }

    fn complete(&self) -> BoxFuture<'_, Result<ObjectMeta>> {
        let what = "Azure commit block list".to_owned();
        Box::pin(crate::error::bounded(self.timeout, || what, async move {
            let ids: Vec<Vec<u8>> = self
                .blocks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect();
            let list = BlockLookupList {
                latest: Some(ids),
                ..Default::default()
            };
            let path = &self.path;
            let content = list
                .try_into()
                .map_err(|e| azure_error(e, format!("committing {path}")))?;
            let (if_match, if_none_match) = conditions(&self.options.mode);
            let options = BlockBlobClientCommitBlockListOptions {
                blob_content_type: self.options.content_type.clone(),
                blob_cache_control: self.options.cache_control.clone(),
                blob_content_disposition: self.options.content_disposition.clone(),
                metadata: (!self.options.metadata.is_empty())
                    .then(|| self.options.metadata.clone().into_iter().collect()),
                if_match,
                if_none_match,
                ..Default::default()
            };
            let out = self
                .blob
                .block_blob_client()
                .commit_block_list(content, Some(options))
                .await
                .map_err(|e| {
                    let e = azure_error(e, format!("committing {path}"));
                    self.options.mode.lost_race(e, path)
                })?;
            let etag = out
                .etag()
                .map_err(|e| azure_error(e, format!("committing {path}")))?;
            // Size: what the parts added up to is known to the driver only; read it back.
            let mut meta = written(path, 0, version(etag), &self.options);
            if let Ok(props) = self.blob.get_properties(None).await
                && let Ok(Some(len)) = props.content_length()
            {
                meta.size = len;
            }
            Ok(meta)
        }))
    }

    fn abort(&self) -> BoxFuture<'_, Result<()>> {
        // Uncommitted blocks are garbage-collected by the service (after a week).
        Box::pin(std::future::ready(Ok(())))
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
