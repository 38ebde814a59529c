//! Amazon SES v2 `SendEmail`.

use super::{BoxFuture, Email, Transport, bounded};
use crate::{Error, ErrorKind, Result};
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{EmailContent, MessageTag, RawMessage};
use std::time::Duration;

/// Amazon SES through `aws-sdk-sesv2`: every email goes as raw MIME (the same bytes SMTP
/// sends: attachments, inline parts and custom headers included), tags as message tags
/// (`<tag>=true`, '.' written as '_'), with an optional configuration set.
///
/// Throttling, 5xx, timeouts and dispatch failures are transient; rejected messages, unverified
/// senders, a suspended account or paused sending are permanent.
#[derive(Debug, Clone)]
pub struct SesTransport {
    client: aws_sdk_sesv2::Client,
    configuration_set: Option<String>,
    timeout: Duration,
}

impl SesTransport {
    /// Over a client you configured.
    pub fn new(client: aws_sdk_sesv2::Client) -> Self {
        Self {
            client,
            configuration_set: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// From the standard AWS chain (`AWS_*` variables, profiles, instance roles), with an
    /// optional region and endpoint override.
    pub async fn from_env_with(
        region: Option<&str>,
        endpoint: Option<&str>,
        configuration_set: Option<&str>,
        timeout: Duration,
    ) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_owned()));
        }
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        // corekit's Mailer retries; the SDK's own retries would multiply them.
        let config = aws_sdk_sesv2::config::Builder::from(&sdk)
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
            .build();
        Self {
            client: aws_sdk_sesv2::Client::from_conf(config),
            configuration_set: configuration_set.map(str::to_owned),
            timeout,
        }
    }

    /// Sends with this configuration set.
    pub fn configuration_set(mut self, name: impl Into<String>) -> Self {
        self.configuration_set = Some(name.into());
        self
    }

    /// Bound on one call (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_sesv2::Client {
        &self.client
    }
}

fn ses_error<E, R>(e: aws_sdk_sesv2::error::SdkError<E, R>, call: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_sesv2::error::SdkError;
    let code = e.code().unwrap_or_default().to_owned();
    let message = e.message().unwrap_or_default().to_owned();
    let (kind, retryable) = match &e {
        SdkError::TimeoutError(_) => (ErrorKind::Timeout, true),
        SdkError::DispatchFailure(d) if d.is_user() => (ErrorKind::Config, false),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => (ErrorKind::Unavailable, true),
        SdkError::ConstructionFailure(_) => (ErrorKind::InvalidInput, false),
        _ => match code.as_str() {
            "TooManyRequestsException"
            | "Throttling"
            | "ThrottlingException"
            | "LimitExceededException"
            | "InternalFailure"
            | "ServiceUnavailable" => (ErrorKind::Unavailable, true),
            "MessageRejected" | "BadRequestException" => (ErrorKind::InvalidInput, false),
            "MailFromDomainNotVerifiedException" | "NotFoundException" => {
                (ErrorKind::NotFound, false)
            }
            "AccountSuspendedException"
            | "SendingPausedException"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch" => (ErrorKind::PermissionDenied, false),
            _ => (ErrorKind::Backend, false),
        },
    };
    let text = if code.is_empty() {
        aws_sdk_sesv2::error::DisplayErrorContext(&e).to_string()
    } else {
        format!("{code}: {message}")
    };
    Error::new(kind, format!("SES {call}: {text}"))
        .with_backend("ses")
        .with_retryable(retryable)
        .with_source(e)
}

impl Transport for SesTransport {
    fn name(&self) -> &'static str {
        "ses"
    }

    /// `ListContactLists` for one item: proves SES answers and accepts the credentials. A key
    /// allowed only to send gets `AccessDenied`, which still proves both, so it passes.
    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let call = self.client.list_contact_lists().page_size(1).send();
            match bounded(self.timeout, || "SES ping".to_owned(), async {
                Ok(call.await)
            })
            .await?
            {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("AccessDeniedException") => Ok(()),
                Err(e) => Err(ses_error(e, "ListContactLists")),
            }
        })
    }

    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let raw = super::to_mime(email)?;
            let raw = RawMessage::builder()
                .data(Blob::new(raw))
                .build()
                .map_err(|e| Error::invalid_input(format!("SES raw message: {e}")))?;
            let mut request = self
                .client
                .send_email()
                .from_email_address(email.sender()?.to_string())
                .content(EmailContent::builder().raw(raw).build());
            let mut destination = aws_sdk_sesv2::types::Destination::builder();
            for a in &email.to {
                destination = destination.to_addresses(a.to_string());
            }
            for a in &email.cc {
                destination = destination.cc_addresses(a.to_string());
            }
            for a in &email.bcc {
                destination = destination.bcc_addresses(a.to_string());
            }
            request = request.destination(destination.build());
            for tag in &email.tags {
                // SES tag names take letters, digits, '_' and '-'.
                let tag = MessageTag::builder()
                    .name(tag.replace('.', "_"))
                    .value("true")
                    .build()
                    .map_err(|e| Error::invalid_input(format!("SES tag: {e}")))?;
                request = request.email_tags(tag);
            }
            if let Some(set) = &self.configuration_set {
                request = request.configuration_set_name(set);
            }
            let out = bounded(self.timeout, || "SES SendEmail".to_owned(), async {
                request.send().await.map_err(|e| ses_error(e, "SendEmail"))
            })
            .await?;
            Ok(out.message_id().map(str::to_owned))
        })
    }
}
