//! SendGrid v3 `POST /v3/mail/send` over reqwest.

use super::{Address, BoxFuture, Email, IDEMPOTENCY_HEADER, Transport, bounded};
use crate::config::Secret;
use crate::{Error, ErrorKind, Result};
use base64::Engine as _;
use serde_json::{Value, json};
use std::time::Duration;

/// Builds a [`SendGridTransport`]; from [`SendGridTransport::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SendGridBuilder {
    api_key: Secret,
    base_url: String,
    timeout: Duration,
}

impl SendGridBuilder {
    /// The API base URL (default `https://api.sendgrid.com`; EU subusers use
    /// `https://api.eu.sendgrid.com`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Bound on one request (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The transport.
    ///
    /// # Errors
    /// [`Config`](ErrorKind::Config) when the HTTP client cannot be built or the key is empty.
    pub fn build(self) -> Result<SendGridTransport> {
        if self.api_key.is_empty() {
            return Err(Error::config("SendGrid API key is empty"));
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| Error::config(format!("SendGrid HTTP client: {e}")))?;
        Ok(SendGridTransport {
            http,
            builder: self,
        })
    }
}

/// SendGrid's v3 Mail Send API.
///
/// Tags become categories, the idempotency key an `Idempotency-Key` header and a
/// `custom_args` entry (SendGrid itself does not de-duplicate), inline parts attachments with
/// `disposition: inline` and their `content_id`. 202 is success (the message id is the
/// `X-Message-Id` header); 429 and 5xx are transient; other 4xx are permanent, with SendGrid's
/// error messages in the error.
#[derive(Debug, Clone)]
pub struct SendGridTransport {
    http: reqwest::Client,
    builder: SendGridBuilder,
}

fn party(a: &Address) -> Value {
    match a.name() {
        Some(name) => json!({"email": a.email(), "name": name}),
        None => json!({"email": a.email()}),
    }
}

fn parties(list: &[Address]) -> Value {
    Value::Array(list.iter().map(party).collect())
}

/// The documented v3 request body for `email`.
pub(crate) fn body(email: &Email) -> Result<Value> {
    let mut personalization = serde_json::Map::new();
    personalization.insert("to".into(), parties(&email.to));
    if !email.cc.is_empty() {
        personalization.insert("cc".into(), parties(&email.cc));
    }
    if !email.bcc.is_empty() {
        personalization.insert("bcc".into(), parties(&email.bcc));
    }
    let mut content = Vec::new();
    // SendGrid requires text/plain before text/html.
    if let Some(text) = email.text.as_deref().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text/plain", "value": text}));
    }
    if let Some(html) = email.html.as_deref().filter(|h| !h.is_empty()) {
        content.push(json!({"type": "text/html", "value": html}));
    }
    let mut body = json!({
        "personalizations": [Value::Object(personalization)],
        "from": party(email.sender()?),
        "subject": email.subject,
        "content": content,
    });
    let map = body
        .as_object_mut()
        .ok_or_else(|| Error::invalid_input("body"))?;
    match email.reply_to.as_slice() {
        [] => {}
        [one] => {
            map.insert("reply_to".into(), party(one));
        }
        many => {
            map.insert("reply_to_list".into(), parties(many));
        }
    }
    if !email.attachments.is_empty() {
        let attachments: Vec<Value> = email
            .attachments
            .iter()
            .map(|a| {
                let mut v = json!({
                    "content": base64::engine::general_purpose::STANDARD.encode(a.data()),
                    "type": a.content_type(),
                    "filename": a.filename(),
                    "disposition": if a.content_id().is_some() { "inline" } else { "attachment" },
                });
                if let (Some(cid), Some(obj)) = (a.content_id(), v.as_object_mut()) {
                    obj.insert("content_id".into(), json!(cid));
                }
                v
            })
            .collect();
        map.insert("attachments".into(), Value::Array(attachments));
    }
    let mut headers = serde_json::Map::new();
    for (k, v) in &email.headers {
        headers.insert(k.clone(), json!(v));
    }
    if let Some(key) = &email.idempotency_key {
        headers.insert(IDEMPOTENCY_HEADER.into(), json!(key));
        map.insert("custom_args".into(), json!({"idempotency_key": key}));
    }
    if !headers.is_empty() {
        map.insert("headers".into(), Value::Object(headers));
    }
    if !email.tags.is_empty() {
        map.insert("categories".into(), json!(email.tags));
    }
    Ok(body)
}

impl SendGridTransport {
    /// A builder with this API key.
    pub fn builder(api_key: impl Into<String>) -> SendGridBuilder {
        SendGridBuilder {
            api_key: Secret::new(api_key),
            base_url: "https://api.sendgrid.com".into(),
            timeout: Duration::from_secs(30),
        }
    }
}

fn http_error(status: u16, detail: String) -> Error {
    let (kind, retryable) = match status {
        429 => (ErrorKind::Unavailable, true),
        500..=599 => (ErrorKind::Unavailable, true),
        401 | 403 => (ErrorKind::PermissionDenied, false),
        413 => (ErrorKind::InvalidInput, false),
        _ => (ErrorKind::InvalidInput, false),
    };
    Error::new(kind, format!("SendGrid answered {status}: {detail}"))
        .with_backend("sendgrid")
        .with_retryable(retryable)
}

/// A failed request: timeouts and unreachable servers are retryable.
fn request_error(e: reqwest::Error, what: &str) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    };
    Error::new(kind, format!("SendGrid {what}: {e}"))
        .with_backend("sendgrid")
        .with_source(e)
}

impl Transport for SendGridTransport {
    fn name(&self) -> &'static str {
        "sendgrid"
    }

    /// `GET /v3/scopes`: proves the API is reachable and the key is accepted (any key may
    /// read its own scopes).
    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let url = format!("{}/v3/scopes", self.builder.base_url);
            bounded(self.builder.timeout, || "SendGrid ping".to_owned(), async {
                let response = self
                    .http
                    .get(&url)
                    .bearer_auth(self.builder.api_key.expose())
                    .send()
                    .await
                    .map_err(|e| request_error(e, "ping"))?;
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                Err(http_error(status, "GET /v3/scopes".to_owned()))
            })
            .await
        })
    }

    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let payload = serde_json::to_vec(&body(email)?)
                .map_err(|e| Error::invalid_input(format!("SendGrid body: {e}")))?;
            let url = format!("{}/v3/mail/send", self.builder.base_url);
            bounded(self.builder.timeout, || "SendGrid send".to_owned(), async {
                let response = self
                    .http
                    .post(&url)
                    .bearer_auth(self.builder.api_key.expose())
                    .header("content-type", "application/json")
                    .body(payload)
                    .send()
                    .await
                    .map_err(|e| request_error(e, "request"))?;
                let status = response.status().as_u16();
                let id = response
                    .headers()
                    .get("x-message-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if (200..300).contains(&status) {
                    return Ok(id);
                }
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let text = response.text().await.unwrap_or_default();
                let messages: Vec<String> = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("errors").and_then(Value::as_array).cloned())
                    .map(|errors| {
                        errors
                            .iter()
                            .map(|e| {
                                let msg = e.get("message").and_then(Value::as_str).unwrap_or("?");
                                match e.get("field").and_then(Value::as_str) {
                                    Some(f) => format!("{f}: {msg}"),
                                    None => msg.to_owned(),
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut detail = if messages.is_empty() {
                    text.chars().take(500).collect()
                } else {
                    messages.join("; ")
                };
                if let Some(after) = retry_after {
                    detail.push_str(&format!(" (retry after {after})"));
                }
                Err(http_error(status, detail))
            })
            .await
        })
    }
}
