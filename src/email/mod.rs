//! Transactional email over SMTP, SendGrid and Amazon SES, with templates, retries and failover.
//!
//! [`Email`] is built and checked once (addresses parsed, header injection refused, a body and a
//! recipient required); [`Transport`] is the trait every provider implements; [`Mailer`] is the
//! handle applications use: it fills in the default sender, retries transient failures with
//! backoff (never permanent ones), fails over to a second transport, renders
//! [templates](Templates) and runs every send in a `tracing` span.
//!
//! | transport | feature | type |
//! |---|---|---|
//! | in-memory outbox (tests, development) | any `email-*` | [`MemoryTransport`] |
//! | `.eml` files in a directory | any `email-*` | [`FileTransport`] |
//! | SMTP (`smtp://`, `smtps://`, STARTTLS), pooled, bounded concurrency, TCP_NODELAY | `email-smtp` | [`SmtpTransport`] |
//! | SendGrid v3 `mail/send` | `email-sendgrid` | [`SendGridTransport`] |
//! | Amazon SES v2 `SendEmail` | `email-ses` | [`SesTransport`] |
//!
//! With feature `email-queue`, [`EmailQueue`] enqueues emails on a
//! [`corekit::queue`](crate::queue) topic and runs the worker that sends them.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use corekit::email::{Email, Mailer, MemoryTransport};
//!
//! let outbox = MemoryTransport::new();
//! let mailer = Mailer::builder(outbox.clone()).default_from("App <app@example.com>")?.build();
//! let email = Email::builder()
//!     .to("Ada <ada@example.com>")
//!     .subject("Welcome")
//!     .text("Hello Ada")
//!     .build()?;
//! mailer.send(email).await?;
//! assert_eq!(outbox.sent()[0].to()[0].email(), "ada@example.com");
//! # Ok::<(), corekit::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Configuration
//!
//! [`Mailer::from_env`] reads [`EmailConfig`] from `EMAIL_*` variables (and `SENDGRID_API_KEY`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `EMAIL_URL` | *(none)* | `smtp://...`/`smtps://...` (as `EMAIL_SMTP_URL`), `file:///dir` or `memory://`: its scheme picks the backend and it is the address |
//! | `EMAIL_BACKEND` (formerly `EMAIL_PROVIDER`, still read) | from `EMAIL_URL`, else `memory` | `smtp`, `sendgrid`, `ses`, `memory` or `file`; one that contradicts `EMAIL_URL` is a `Config` error |
//! | `EMAIL_FROM` | *(none)* | default sender, `Name <address>` |
//! | `EMAIL_SMTP_URL`, else `SMTP_URL` | `smtp://127.0.0.1:25` | `smtp://[user:pass@]host:port` (STARTTLS or fail: nothing is sent in clear), `?tls=opportunistic` (STARTTLS when offered), `?tls=none` (plain text, e.g. a local relay or maildev; never with credentials), `smtps://` (implicit TLS). lettre's own `smtp://` means plain text: corekit's does not |
//! | `EMAIL_SMTP_CA_FILE` | *(none)* | PEM CA to trust for TLS instead of the system roots |
//! | `EMAIL_SMTP_POOL_SIZE` | `8` | SMTP connections, and sends in flight |
//! | `EMAIL_SENDGRID_API_KEY` or `SENDGRID_API_KEY` | *(none)* | SendGrid API key |
//! | `EMAIL_SENDGRID_URL` | `https://api.sendgrid.com` | SendGrid base URL |
//! | `EMAIL_SES_REGION` | from the AWS chain | SES region |
//! | `EMAIL_SES_ENDPOINT` | *(none)* | SES endpoint override (tests, VPC endpoints) |
//! | `EMAIL_SES_CONFIGURATION_SET` | *(none)* | SES configuration set |
//! | `EMAIL_FILE_DIR` | `./outbox` | where the file transport writes `.eml` files |
//! | `EMAIL_TIMEOUT` | `30s` | bound on one send attempt (connect, TLS, auth, data, response) |
//! | `EMAIL_MAX_ATTEMPTS` | `3` | attempts per send for transient failures |
//! | `EMAIL_RETRY_BACKOFF` | `500ms` | first retry delay; doubles per attempt |
//! | `EMAIL_RETRY_BACKOFF_MAX` | `30s` | longest retry delay |
//! | `EMAIL_TEMPLATES_DIR` | *(none)* | templates to load (feature `email-templates`) |
//!
//! # Errors
//!
//! Permanent failures (SMTP 5xx, HTTP 4xx other than 429, a rejected address) are not
//! retryable; transient ones (SMTP 4xx, HTTP 429 and 5xx, timeouts, lost connections) are, and
//! [`Mailer`] retries them.

mod address;
mod config;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod conformance;
mod file;
mod memory;
mod message;
mod mime;

#[cfg(feature = "email-queue")]
mod queued;
#[cfg(feature = "email-sendgrid")]
mod sendgrid;
#[cfg(feature = "email-ses")]
mod ses;
#[cfg(feature = "email-smtp")]
mod smtp;
#[cfg(feature = "email-templates")]
mod templates;

pub use address::Address;
pub use config::{EmailBackend, EmailConfig};
pub use file::FileTransport;
pub use memory::MemoryTransport;
pub use message::{Attachment, Email, EmailBuilder, MAX_TAGS};
pub use mime::to_mime;

#[cfg(feature = "email-queue")]
#[cfg_attr(docsrs, doc(cfg(feature = "email-queue")))]
pub use queued::EmailQueue;
#[cfg(feature = "email-sendgrid")]
#[cfg_attr(docsrs, doc(cfg(feature = "email-sendgrid")))]
pub use sendgrid::{SendGridBuilder, SendGridTransport};
#[cfg(feature = "email-ses")]
#[cfg_attr(docsrs, doc(cfg(feature = "email-ses")))]
pub use ses::SesTransport;
#[cfg(feature = "email-smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "email-smtp")))]
pub use smtp::{SmtpBuilder, SmtpTransport};
#[cfg(feature = "email-templates")]
#[cfg_attr(docsrs, doc(cfg(feature = "email-templates")))]
pub use templates::{Rendered, Templates};

#[cfg(any(
    feature = "email-smtp",
    feature = "email-sendgrid",
    feature = "email-ses"
))]
pub(crate) use crate::error::bounded;
use crate::retry::Backoff;
use crate::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed, sendable future: what [`Transport`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Header carrying the idempotency key on every transport.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// What a successful send returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sent {
    /// The provider's id for the message, when it returns one (SMTP: the server's reply;
    /// SendGrid: `X-Message-Id`; SES: `MessageId`).
    pub message_id: Option<String>,
    /// The transport that accepted it.
    pub transport: &'static str,
    /// Attempts it took, over all transports.
    pub attempts: u32,
}

/// An email backend. Implementations send one already-validated email per call, bounded by
/// their timeout, and classify errors as retryable (transient) or not.
pub trait Transport: std::any::Any + Send + Sync {
    /// Short name (`smtp`, `sendgrid`, `ses`, `memory`, `file`): errors and spans carry it.
    fn name(&self) -> &'static str;

    /// Sends one email (its sender is set).
    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, Result<Option<String>>>;

    /// Checks the backend answers and accepts the credentials (a readiness probe); no email
    /// is sent.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;

    /// Releases what the transport holds open (SMTP: its pooled connections close when the
    /// last handle is dropped, so the default does nothing).
    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Retry policy of a [`Mailer`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Retry {
    /// Attempts per transport (at least 1).
    pub max_attempts: u32,
    /// The wait between attempts (default 500 ms doubling to 30 s).
    pub backoff: Backoff,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
        }
    }
}

impl Retry {
    /// `max_attempts` attempts, starting at `backoff` and doubling (up to 30 s).
    pub fn new(max_attempts: u32, backoff: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            backoff: Backoff::new(backoff, Backoff::default().max.max(backoff)),
        }
    }

    /// With this first delay and cap.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff::new(initial, max);
        self
    }
}

/// Sends email through a transport, with a default sender, retries and failover.
///
/// ```
/// # block_on(async {
/// use corekit::email::{Email, Mailer, MemoryTransport};
///
/// // Mailer::from_env() picks SMTP, SendGrid or SES from EMAIL_URL / EMAIL_BACKEND.
/// let mailer = Mailer::builder(MemoryTransport::new())
///     .default_from("Acme <hello@acme.example>")?
///     .build();
/// let email = Email::builder()
///     .to("ada@example.com")
///     .subject("Welcome")
///     .text("Hello Ada")
///     .html("<p>Hello <b>Ada</b></p>")
///     .build()?;
/// let sent = mailer.send(email).await?; // transient failures retried, then the fallback
/// println!("sent through {}", sent.transport);
/// assert_eq!(mailer.outbox().expect("memory").sent().len(), 1);
/// # Ok::<(), corekit::Error>(()) }).unwrap();
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    primary: Arc<dyn Transport>,
    /// Where the primary transport's server is (from `from_env`), for errors reaching it.
    origin: Option<Arc<str>>,
    fallback: Option<Arc<dyn Transport>>,
    default_from: Option<Address>,
    retry: Retry,
    #[cfg(feature = "email-templates")]
    templates: Option<Templates>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("transport", &self.inner.primary.name())
            .field("fallback", &self.inner.fallback.as_ref().map(|t| t.name()))
            .field("default_from", &self.inner.default_from)
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// Builds a [`Mailer`]; from [`Mailer::builder`].
#[must_use]
pub struct MailerBuilder {
    primary: Arc<dyn Transport>,
    origin: Option<Arc<str>>,
    fallback: Option<Arc<dyn Transport>>,
    default_from: Option<Address>,
    retry: Retry,
    #[cfg(feature = "email-templates")]
    templates: Option<Templates>,
}

impl std::fmt::Debug for MailerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailerBuilder")
            .field("transport", &self.primary.name())
            .finish_non_exhaustive()
    }
}

impl MailerBuilder {
    /// The sender of emails built without one.
    ///
    /// # Errors
    /// `InvalidInput` when the address does not parse.
    pub fn default_from(mut self, from: &str) -> Result<Self> {
        self.default_from = Some(from.parse()?);
        Ok(self)
    }

    /// A second transport, tried when the first still fails after its retries (transient
    /// failures only: a permanent rejection would be rejected again).
    pub fn fallback(mut self, transport: impl Transport) -> Self {
        self.fallback = Some(Arc::new(transport));
        self
    }

    /// The retry policy (default: 3 attempts from 500 ms).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Templates for [`Mailer::send_template`].
    #[cfg(feature = "email-templates")]
    #[cfg_attr(docsrs, doc(cfg(feature = "email-templates")))]
    pub fn templates(mut self, templates: Templates) -> Self {
        self.templates = Some(templates);
        self
    }

    /// Notes where the primary transport's server is, for errors about reaching it.
    pub(crate) fn origin(mut self, origin: String) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// The mailer.
    pub fn build(self) -> Mailer {
        Mailer {
            inner: Arc::new(Inner {
                primary: self.primary,
                origin: self.origin,
                fallback: self.fallback,
                default_from: self.default_from,
                retry: self.retry,
                #[cfg(feature = "email-templates")]
                templates: self.templates,
            }),
        }
    }
}

impl Mailer {
    /// A mailer over `transport` with the default retry policy and no default sender.
    pub fn new(transport: impl Transport) -> Self {
        Self::builder(transport).build()
    }

    /// A builder over `transport`.
    pub fn builder(transport: impl Transport) -> MailerBuilder {
        MailerBuilder {
            primary: Arc::new(transport),
            origin: None,
            fallback: None,
            default_from: None,
            retry: Retry::default(),
            #[cfg(feature = "email-templates")]
            templates: None,
        }
    }

    /// A mailer configured from `EMAIL_*` variables (see the [module docs](self)).
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the variable, or when the backend's feature
    /// is off.
    pub async fn from_env() -> Result<Self> {
        use crate::config::EnvConfig;
        let config = EmailConfig::from_env()?;
        if config.backend() == EmailBackend::Memory {
            crate::config::warn_if_defaulted(
                EmailConfig::PREFIX,
                "emails are kept in memory and never sent",
                "EMAIL_URL=smtp://host:587 or EMAIL_BACKEND=sendgrid|ses (or EMAIL_BACKEND=memory \
                 to choose this)",
            );
        }
        Self::from_config(&config).await
    }

    /// A mailer from a loaded config.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env); [`Config`](crate::ErrorKind::Config) when
    /// [`from`](EmailConfig::from) (`EMAIL_FROM`) is unset, since every send would fail.
    pub async fn from_config(config: &EmailConfig) -> Result<Self> {
        use crate::config::EnvConfig;
        config
            .validate()
            .map_err(|issue| issue.into_error(EmailConfig::PREFIX, EmailConfig::SECRETS))?;
        // Refused at start-up, not at the first send deep inside a consumer.
        if config.from.is_none() {
            return Err(crate::Error::config(
                "EMAIL_FROM is unset: the mailer needs a default sender, e.g. \
                 EMAIL_FROM=\"App <app@example.com>\"",
            ));
        }
        config.build().await
    }

    /// The primary transport's name (`smtp`, `sendgrid`, `ses`, `memory`, `file`).
    pub fn backend_name(&self) -> &'static str {
        self.inner.primary.name()
    }

    /// The primary transport when it is a `T`, for calls the mailer does not cover (Go CDK's
    /// `As`):
    ///
    /// ```
    /// use corekit::email::{Mailer, MemoryTransport};
    /// let mailer = Mailer::new(MemoryTransport::new());
    /// let outbox = mailer.downcast_ref::<MemoryTransport>().expect("a memory mailer");
    /// assert!(outbox.sent().is_empty());
    /// ```
    pub fn downcast_ref<T: Transport>(&self) -> Option<&T> {
        let any: &dyn std::any::Any = self.inner.primary.as_ref();
        any.downcast_ref::<T>()
    }

    /// The in-memory outbox, when the mailer sends to one (`EMAIL_BACKEND=memory`, the
    /// default): what a test or a dev server reads the "sent" emails from.
    ///
    /// ```
    /// # tokio_test_block_on(async {
    /// use corekit::email::{Email, Mailer, MemoryTransport};
    /// let mailer = Mailer::builder(MemoryTransport::new())
    ///     .default_from("app@example.com")?
    ///     .build();
    /// let email = Email::builder().to("ada@example.com").subject("Hi").text("Hello").build()?;
    /// mailer.send(email).await?;
    /// assert_eq!(mailer.outbox().expect("a memory mailer").sent().len(), 1);
    /// # Ok::<(), corekit::Error>(()) });
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    /// # }
    /// ```
    pub fn outbox(&self) -> Option<&MemoryTransport> {
        self.downcast_ref::<MemoryTransport>()
    }

    /// Sends `email`: fills in the default sender, retries transient failures with backoff,
    /// then fails over when a fallback is set. The idempotency key (generated when the email
    /// has none) is the same on every attempt.
    ///
    /// # Errors
    /// `InvalidInput` when there is no sender; otherwise the last transport error (permanent at
    /// once, transient after the retries).
    pub async fn send(&self, mut email: Email) -> Result<Sent> {
        if let Some(from) = &self.inner.default_from {
            email.default_from(from);
        }
        email.sender()?;
        if email.idempotency_key.is_none() {
            email.idempotency_key = Some(format!("{:032x}", fastrand::u128(..)));
        }
        let mut attempts = 0;
        let mut last = None;
        let transports = std::iter::once(&self.inner.primary).chain(&self.inner.fallback);
        for transport in transports {
            if let Some(e) = &last {
                if !is_transient(e) {
                    break;
                }
                tracing::warn!(error = %e, fallback = transport.name(), "email: failing over");
            }
            match self
                .send_with_retries(transport.as_ref(), &email, &mut attempts)
                .await
            {
                Ok(message_id) => {
                    return Ok(Sent {
                        message_id,
                        transport: transport.name(),
                        attempts,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::invalid_input("no transport")))
    }

    async fn send_with_retries(
        &self,
        transport: &dyn Transport,
        email: &Email,
        attempts: &mut u32,
    ) -> Result<Option<String>> {
        let retry = self.inner.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            *attempts += 1;
            let system = transport.name();
            let call =
                crate::instrument::Call::new(crate::instrument::Module::Email, system, "send");
            let span = || {
                tracing::info_span!(
                    "email",
                    otel.name = "send",
                    email.transport = system,
                    email.recipients = email.recipients().count(),
                    attempt,
                )
            };
            let result =
                crate::instrument::call(call, tracing::Level::INFO, span, transport.send(email))
                    .await
                    .map_err(|e| self.located(transport, e));
            match result {
                Ok(id) => return Ok(id),
                Err(e) => {
                    if !is_transient(&e) || attempt >= retry.max_attempts.max(1) {
                        return Err(e);
                    }
                    let delay = retry.backoff.delay(attempt);
                    tracing::debug!(error = %e, attempt, ?delay, "email: retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Renders template `name` with `context` into subject, HTML and text, completes `email`
    /// (recipients, attachments, ...) with them, and sends it.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) when no templates were configured or
    /// rendering fails (naming the template and, for a missing variable, the variable);
    /// otherwise as [`send`](Self::send).
    #[cfg(feature = "email-templates")]
    #[cfg_attr(docsrs, doc(cfg(feature = "email-templates")))]
    pub async fn send_template<C: serde::Serialize>(
        &self,
        name: &str,
        context: &C,
        email: EmailBuilder,
    ) -> Result<Sent> {
        let templates = self.inner.templates.as_ref().ok_or_else(|| {
            Error::invalid_input(
                "send_template: this mailer has no templates (MailerBuilder::templates)",
            )
        })?;
        let rendered = templates.render(name, context)?;
        let email = rendered.apply(email).build()?;
        self.send(email).await
    }

    /// Checks the primary transport answers and accepts the credentials; no email is sent.
    ///
    /// # Errors
    /// The transport's error when it does not.
    pub async fn ping(&self) -> Result<()> {
        let transport = &self.inner.primary;
        let system = transport.name();
        let call = crate::instrument::Call::new(crate::instrument::Module::Email, system, "ping");
        let span = || tracing::debug_span!("email", otel.name = "ping", email.transport = system);
        crate::instrument::call(call, tracing::Level::DEBUG, span, transport.ping())
            .await
            .map_err(|e| self.located(transport.as_ref(), e))
    }

    /// `e`, naming where the primary transport's server is when reaching it failed.
    fn located(&self, transport: &dyn Transport, e: Error) -> Error {
        let primary = std::ptr::addr_eq(transport, Arc::as_ptr(&self.inner.primary));
        e.at_origin(self.inner.origin.as_deref().filter(|_| primary))
    }

    /// Releases what the transports hold open; sends made afterwards may fail. Clones share
    /// the transports, so close once, at shutdown.
    ///
    /// # Errors
    /// The first transport's error when closing fails.
    pub async fn close(&self) -> Result<()> {
        let closing = std::iter::once(&self.inner.primary).chain(&self.inner.fallback);
        for transport in closing {
            transport.close().await?;
        }
        Ok(())
    }
}

fn is_transient(e: &Error) -> bool {
    e.is_retryable()
}
