//! `EMAIL_*` configuration.

use super::{Mailer, Retry};
use crate::config::{self as cfg, ConfigIssue, EnvConfig, Secret};
use crate::{Error, Result};
use serde::Deserialize;
use std::time::Duration;

/// Which transport [`Mailer::from_env`] builds (`EMAIL_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailBackend {
    /// [`MemoryTransport`](super::MemoryTransport).
    #[default]
    Memory,
    /// [`FileTransport`](super::FileTransport).
    File,
    /// [`SmtpTransport`](super::SmtpTransport) (feature `email-smtp`).
    Smtp,
    /// [`SendGridTransport`](super::SendGridTransport) (feature `email-sendgrid`).
    Sendgrid,
    /// [`SesTransport`](super::SesTransport) (feature `email-ses`).
    Ses,
}

/// Email settings; every field has the default listed in the [module docs](super).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EmailConfig {
    /// `EMAIL_BACKEND` (formerly `EMAIL_PROVIDER`, still read); when unset,
    /// [`url`](Self::url)'s scheme picks it, else `memory`. See [`backend()`](Self::backend).
    #[serde(alias = "provider")]
    pub backend: Option<EmailBackend>,
    /// `EMAIL_URL`: `smtp://`/`smtps://` (the SMTP server, in place of `EMAIL_SMTP_URL`),
    /// `file:///dir` (in place of `EMAIL_FILE_DIR`) or `memory://`. Its scheme picks the
    /// backend; SendGrid and SES have no URL and are chosen with `EMAIL_BACKEND`. A secret
    /// because it may carry a password.
    pub url: Option<Secret>,
    /// `EMAIL_FROM`.
    pub from: Option<String>,
    /// `EMAIL_SMTP_URL`; a secret because it may carry a password.
    pub smtp_url: Secret,
    /// `EMAIL_SMTP_CA_FILE`.
    pub smtp_ca_file: Option<String>,
    /// `EMAIL_SMTP_POOL_SIZE`.
    pub smtp_pool_size: usize,
    /// `EMAIL_SENDGRID_API_KEY` (or `SENDGRID_API_KEY`).
    pub sendgrid_api_key: Secret,
    /// `EMAIL_SENDGRID_URL`.
    pub sendgrid_url: String,
    /// `EMAIL_SES_REGION`.
    pub ses_region: Option<String>,
    /// `EMAIL_SES_ENDPOINT`.
    pub ses_endpoint: Option<String>,
    /// `EMAIL_SES_CONFIGURATION_SET`.
    pub ses_configuration_set: Option<String>,
    /// `EMAIL_FILE_DIR`.
    pub file_dir: String,
    /// `EMAIL_TIMEOUT`.
    #[serde(with = "cfg::duration")]
    pub timeout: Duration,
    /// `EMAIL_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `EMAIL_RETRY_BACKOFF`.
    #[serde(with = "cfg::duration")]
    pub retry_backoff: Duration,
    /// `EMAIL_RETRY_BACKOFF_MAX`.
    #[serde(with = "cfg::duration")]
    pub retry_backoff_max: Duration,
    /// `EMAIL_TEMPLATES_DIR`.
    pub templates_dir: Option<String>,
    /// Which variable each setting came from (filled by the loader), for errors.
    #[serde(skip)]
    pub sources: cfg::Sources,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            backend: None,
            url: None,
            from: None,
            smtp_url: Secret::new("smtp://127.0.0.1:25"),
            smtp_ca_file: None,
            smtp_pool_size: 8,
            sendgrid_api_key: Secret::new(""),
            sendgrid_url: "https://api.sendgrid.com".into(),
            ses_region: None,
            ses_endpoint: None,
            ses_configuration_set: None,
            file_dir: "./outbox".into(),
            timeout: Duration::from_secs(30),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(500),
            retry_backoff_max: Duration::from_secs(30),
            templates_dir: None,
            sources: cfg::Sources::default(),
        }
    }
}

impl EnvConfig for EmailConfig {
    const PREFIX: &'static str = "EMAIL_";
    fn sources_mut(&mut self) -> Option<&mut cfg::Sources> {
        Some(&mut self.sources)
    }
    const SECRETS: &'static [&'static str] = &["url", "smtp_url", "sendgrid_api_key"];
    const FALLBACKS: &'static [(&'static str, &'static [&'static str])] = &[
        ("smtp_url", &["SMTP_URL"]),
        ("sendgrid_api_key", &["SENDGRID_API_KEY"]),
    ];

    fn validate(&self) -> std::result::Result<(), ConfigIssue> {
        if let Some(from) = &self.from
            && from.parse::<super::Address>().is_err()
        {
            return Err(ConfigIssue::new(
                "from",
                from.clone(),
                "an address like App <app@example.com>",
            ));
        }
        for (field, v) in [
            ("smtp_pool_size", self.smtp_pool_size as u64),
            ("max_attempts", u64::from(self.max_attempts)),
        ] {
            if v == 0 {
                return Err(ConfigIssue::new(field, "0", "a number above 0"));
            }
        }
        cfg::check_retry(
            self.max_attempts,
            self.retry_backoff,
            self.retry_backoff_max,
        )?;
        if self.timeout.is_zero() {
            return Err(ConfigIssue::new("timeout", "0s", "a duration above zero"));
        }
        let from_url = self.url_backend()?;
        cfg::check_backend_matches_url(
            self.backend.map(EmailBackend::as_str),
            from_url.map(EmailBackend::as_str),
            "EMAIL_URL",
            &[],
        )?;
        if self.backend() == EmailBackend::Smtp {
            let url = self.smtp_address();
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(ConfigIssue::new(
                    if from_url.is_some() {
                        "url"
                    } else {
                        "smtp_url"
                    },
                    url,
                    "smtp://[user:pass@]host:port[?tls=none|opportunistic|required] or smtps://",
                ));
            }
        }
        if self.backend() == EmailBackend::Sendgrid && self.sendgrid_api_key.is_empty() {
            return Err(ConfigIssue::new(
                "sendgrid_api_key",
                "",
                "the SendGrid API key (or SENDGRID_API_KEY)",
            ));
        }
        if self.backend() == EmailBackend::Sendgrid
            && !(self.sendgrid_url.starts_with("https://")
                || self.sendgrid_url.starts_with("http://"))
        {
            return Err(ConfigIssue::new(
                "sendgrid_url",
                self.sendgrid_url.clone(),
                "an http(s):// base URL",
            ));
        }
        Ok(())
    }
}

impl EmailBackend {
    /// The name `EMAIL_BACKEND` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailBackend::Memory => "memory",
            EmailBackend::File => "file",
            EmailBackend::Smtp => "smtp",
            EmailBackend::Sendgrid => "sendgrid",
            EmailBackend::Ses => "ses",
        }
    }
}

impl EmailConfig {
    /// The transport [`Mailer::from_config`] builds: `EMAIL_BACKEND`, else the one
    /// `EMAIL_URL`'s scheme names, else memory.
    pub fn backend(&self) -> EmailBackend {
        self.backend
            .or_else(|| self.url_backend().ok().flatten())
            .unwrap_or_default()
    }

    /// The SMTP server: `EMAIL_URL` when it is an SMTP URL, else `EMAIL_SMTP_URL`.
    pub fn smtp_address(&self) -> &str {
        match self.url.as_ref().map(Secret::expose) {
            Some(url) if self.url_backend() == Ok(Some(EmailBackend::Smtp)) => url,
            _ => self.smtp_url.expose(),
        }
    }

    /// The file transport's directory: `EMAIL_URL` when it is a `file://` URL, else
    /// `EMAIL_FILE_DIR`.
    pub fn file_directory(&self) -> String {
        match self.url.as_ref().map(Secret::expose) {
            Some(url) if self.url_backend() == Ok(Some(EmailBackend::File)) => {
                cfg::percent_decode(url.trim_start_matches("file://"))
            }
            _ => self.file_dir.clone(),
        }
    }

    /// The backend `EMAIL_URL`'s scheme names, when it is set.
    fn url_backend(&self) -> std::result::Result<Option<EmailBackend>, ConfigIssue> {
        let Some(url) = self.url.as_ref().map(Secret::expose) else {
            return Ok(None);
        };
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("smtp" | "smtps") => Ok(Some(EmailBackend::Smtp)),
            Some("memory") => Ok(Some(EmailBackend::Memory)),
            Some("file") if url.len() > "file://".len() => Ok(Some(EmailBackend::File)),
            _ => Err(ConfigIssue::new(
                "url",
                url,
                "smtp://[user:pass@]host:port, smtps://..., file:///directory or memory://",
            )),
        }
    }

    /// `what at ADDRESS`, with the variable that set the address when one did.
    fn named(&self, what: &str, address: &str, field: &str) -> String {
        match self.sources.variable(field) {
            Some(var) => format!("{what} at {address} (from {var})"),
            None => format!("{what} at {address}"),
        }
    }

    fn missing(&self, feature: &str) -> Error {
        Error::config(format!(
            "EMAIL_BACKEND={} needs the cargo feature {feature}",
            self.backend().as_str()
        ))
    }

    /// Builds the configured mailer.
    pub(super) async fn build(&self) -> Result<Mailer> {
        let backend = self.backend();
        let address = match backend {
            EmailBackend::Smtp => crate::config::redact_url(self.smtp_address()),
            EmailBackend::Sendgrid => crate::config::redact_url(&self.sendgrid_url),
            EmailBackend::File => self.file_directory(),
            EmailBackend::Memory | EmailBackend::Ses => String::new(),
        };
        tracing::info!(backend = backend.as_str(), %address, "email: building the mailer");
        let mut builder = match backend {
            EmailBackend::Memory => Mailer::builder(super::MemoryTransport::new()),
            EmailBackend::File => Mailer::builder(super::FileTransport::new(self.file_directory())),
            #[cfg(feature = "email-smtp")]
            EmailBackend::Smtp => {
                let mut b = super::SmtpTransport::from_url(self.smtp_address())?
                    .pool_size(self.smtp_pool_size)
                    .timeout(self.timeout);
                if let Some(path) = &self.smtp_ca_file {
                    let pem = std::fs::read(path)
                        .map_err(|e| Error::config(format!("EMAIL_SMTP_CA_FILE={path:?}: {e}")))?;
                    b = b.root_ca_pem(pem);
                }
                Mailer::builder(b.build()?)
            }
            #[cfg(feature = "email-sendgrid")]
            EmailBackend::Sendgrid => Mailer::builder(
                super::SendGridTransport::builder(self.sendgrid_api_key.expose())
                    .base_url(&self.sendgrid_url)
                    .timeout(self.timeout)
                    .build()?,
            ),
            #[cfg(feature = "email-ses")]
            EmailBackend::Ses => Mailer::builder(
                super::SesTransport::from_env_with(
                    self.ses_region.as_deref(),
                    self.ses_endpoint.as_deref(),
                    self.ses_configuration_set.as_deref(),
                    self.timeout,
                )
                .await,
            ),
            #[allow(unreachable_patterns)]
            EmailBackend::Smtp => return Err(self.missing("email-smtp")),
            #[allow(unreachable_patterns)]
            EmailBackend::Sendgrid => return Err(self.missing("email-sendgrid")),
            #[allow(unreachable_patterns)]
            EmailBackend::Ses => return Err(self.missing("email-ses")),
        };
        builder = builder.retry(
            Retry::new(self.max_attempts, self.retry_backoff)
                .backoff(self.retry_backoff, self.retry_backoff_max),
        );
        // Where the server is and which variable said so, for errors about reaching it. An
        // SMTP address left at its default is worth a hint (127.0.0.1:25 is rarely meant);
        // SendGrid's and SES's defaults are the real services.
        let origin = match backend {
            EmailBackend::Smtp => {
                let field = match self.url_backend() {
                    Ok(Some(EmailBackend::Smtp)) => "url",
                    _ => "smtp_url",
                };
                Some(format!(
                    "smtp server {address} ({})",
                    self.sources.describe(field)
                ))
            }
            EmailBackend::Sendgrid => Some(self.named("SendGrid API", &address, "sendgrid_url")),
            EmailBackend::Ses => Some(match &self.ses_endpoint {
                Some(e) => self.named("SES", &crate::config::redact_url(e), "ses_endpoint"),
                None => "SES (the region's AWS endpoint)".to_owned(),
            }),
            EmailBackend::Memory | EmailBackend::File => None,
        };
        if let Some(origin) = origin {
            builder = builder.origin(origin);
        }
        if let Some(from) = &self.from {
            builder = builder.default_from(from)?;
        }
        #[cfg(feature = "email-templates")]
        if let Some(dir) = &self.templates_dir {
            builder = builder.templates(super::Templates::from_dir(dir)?);
        }
        #[cfg(not(feature = "email-templates"))]
        if self.templates_dir.is_some() {
            return Err(Error::config(
                "EMAIL_TEMPLATES_DIR needs the cargo feature email-templates",
            ));
        }
        Ok(builder.build())
    }
}
