//! The GCS builder: bucket, endpoint, credentials.

#[allow(unused_imports)]
use super::*;

/// Builds a [`GcsStorage`]; from [`GcsStorage::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct GcsBuilder {
    pub(super) bucket: String,
    pub(super) endpoint: Option<String>,
    pub(super) auth: Auth,
    pub(super) signer: Option<(String, crate::config::Secret)>,
    pub(super) timeout: Duration,
    pub(super) page_size: i32,
}

impl GcsBuilder {
    /// Objects per listing request (default 1000, GCS's maximum).
    pub fn page_size(mut self, n: u16) -> Self {
        self.page_size = i32::from(n.clamp(1, 1000));
        self
    }

    /// Another endpoint (an emulator: `http://127.0.0.1:4443`); implies anonymous access unless
    /// credentials are set after this call.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into().trim_end_matches('/').to_owned());
        self.auth = Auth::Anonymous;
        self
    }

    /// Application default credentials (the default).
    pub fn default_credentials(mut self) -> Self {
        self.auth = Auth::Default;
        self
    }

    /// A service-account JSON key file.
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::KeyFile(path.into());
        self
    }

    /// No credentials at all.
    pub fn anonymous(mut self) -> Self {
        self.auth = Auth::Anonymous;
        self
    }

    /// Signs presigned URLs as `access_id` (a service account e-mail) with this PKCS#8 PEM
    /// private key, instead of the key the credentials carry.
    pub fn signer(
        mut self,
        access_id: impl Into<String>,
        private_key_pem: impl Into<String>,
    ) -> Self {
        self.signer = Some((
            access_id.into(),
            crate::config::Secret::new(private_key_pem),
        ));
        self
    }

    /// Bound on one call (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The store. Credentials are loaded (and a first token fetched) here.
    ///
    /// # Errors
    /// `Config` when credentials cannot be loaded.
    pub async fn build(self) -> Result<GcsStorage> {
        let mut config = ClientConfig::default();
        if let Some(endpoint) = &self.endpoint {
            config.storage_endpoint.clone_from(endpoint);
        }
        let auth_error = |e: gcloud_storage::client::google_cloud_auth::error::Error| {
            Error::config(format!("GCS credentials ({:?}): {e}", self.auth))
        };
        let config = match &self.auth {
            Auth::Anonymous => config.anonymous(),
            Auth::Default => config.with_auth().await.map_err(auth_error)?,
            Auth::KeyFile(path) => {
                let file = gcloud_storage::client::google_cloud_auth::credentials::CredentialsFile::new_from_file(
                    path.display().to_string(),
                )
                .await
                .map_err(auth_error)?;
                config.with_credentials(file).await.map_err(auth_error)?
            }
        };
        Ok(GcsStorage {
            client: Client::new(config),
            bucket: self.bucket,
            endpoint: self.endpoint,
            signer: self.signer,
            timeout: self.timeout,
            page_size: self.page_size,
        })
    }
}
