//! Sending through [`corekit::queue`](crate::queue): enqueue now, a worker sends with the
//! mailer's retry policy (feature `email-queue`).

use super::{Attachment, Email, Mailer};
use crate::queue::{ConsumeReport, Message, Queue};
use crate::{Error, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::future::Future;

/// An email as it travels on the queue: plain strings, attachments in base64, rebuilt (and so
/// re-validated) by the worker.
#[derive(Serialize, Deserialize)]
struct Wire {
    from: Option<String>,
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    reply_to: Vec<String>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    attachments: Vec<WireAttachment>,
    headers: Vec<(String, String)>,
    tags: Vec<String>,
    idempotency_key: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireAttachment {
    filename: String,
    content_type: String,
    data: String,
    content_id: Option<String>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl From<&Email> for Wire {
    fn from(e: &Email) -> Self {
        let list = |v: &[super::Address]| v.iter().map(ToString::to_string).collect();
        Wire {
            from: e.from.as_ref().map(ToString::to_string),
            to: list(&e.to),
            cc: list(&e.cc),
            bcc: list(&e.bcc),
            reply_to: list(&e.reply_to),
            subject: e.subject.clone(),
            text: e.text.clone(),
            html: e.html.clone(),
            attachments: e
                .attachments
                .iter()
                .map(|a| WireAttachment {
                    filename: a.filename().to_owned(),
                    content_type: a.content_type().to_owned(),
                    data: b64().encode(a.data()),
                    content_id: a.content_id().map(str::to_owned),
                })
                .collect(),
            headers: e.headers.clone(),
            tags: e.tags.clone(),
            idempotency_key: e.idempotency_key.clone(),
        }
    }
}

impl Wire {
    fn into_email(self) -> Result<Email> {
        let mut b = Email::builder().subject(self.subject);
        if let Some(from) = self.from {
            b = b.from(from);
        }
        for a in self.to {
            b = b.to(a);
        }
        for a in self.cc {
            b = b.cc(a);
        }
        for a in self.bcc {
            b = b.bcc(a);
        }
        for a in self.reply_to {
            b = b.reply_to(a);
        }
        if let Some(t) = self.text {
            b = b.text(t);
        }
        if let Some(h) = self.html {
            b = b.html(h);
        }
        for a in self.attachments {
            let data = b64()
                .decode(a.data)
                .map_err(|e| Error::invalid_input(format!("attachment {:?}: {e}", a.filename)))?;
            b = b.attachment(match a.content_id {
                Some(cid) => Attachment::inline(cid, a.filename, a.content_type, data),
                None => Attachment::new(a.filename, a.content_type, data),
            });
        }
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        for t in self.tags {
            b = b.tag(t);
        }
        if let Some(k) = self.idempotency_key {
            b = b.idempotency_key(k);
        }
        b.build()
    }
}

/// Enqueues emails on a topic and runs the worker that sends them.
///
/// The message key is the first recipient, so one person's emails are sent in order; the
/// message id is the idempotency key (generated when missing), so a redelivered job keeps it.
/// The worker sends with the [`Mailer`]'s retries; what still fails transiently is retried by
/// the queue's [`Consumer`](crate::queue::Consumer) with backoff, and a permanent failure (a
/// rejected address, an email that no longer validates) goes to the dead-letter topic at once.
#[derive(Debug, Clone)]
pub struct EmailQueue {
    queue: Queue,
    topic: String,
}

impl EmailQueue {
    /// Emails on `topic` of `queue`.
    pub fn new(queue: Queue, topic: impl Into<String>) -> Self {
        Self {
            queue,
            topic: topic.into(),
        }
    }

    /// Publishes `email` for a worker to send; returns once the broker accepted it.
    ///
    /// # Errors
    /// The queue's errors.
    pub async fn enqueue(&self, mut email: Email) -> Result<()> {
        let key = email
            .idempotency_key
            .get_or_insert_with(|| format!("{:032x}", fastrand::u128(..)))
            .clone();
        let ordering = email.recipients().next().map(|a| a.email().to_owned());
        let mut message = Message::json(&Wire::from(&email))?.with_id(key);
        if let Some(k) = ordering {
            message = message.with_key(k);
        }
        self.queue.publish(&self.topic, message).await
    }

    /// Sends what is enqueued, as consumer group `group`, until `shutdown` completes.
    ///
    /// # Errors
    /// As [`Consumer::run`](crate::queue::Consumer::run).
    pub async fn work(
        &self,
        mailer: Mailer,
        group: &str,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<ConsumeReport> {
        self.queue.ensure_group(&self.topic, group).await?;
        self.queue
            .consumer(&self.topic, group)
            .run(
                move |message: Message| {
                    let mailer = mailer.clone();
                    async move {
                        let email = message.decode::<Wire>()?.into_email()?;
                        match mailer.send(email).await {
                            Ok(_) => Ok(()),
                            // Permanent: dead-letter now rather than retry.
                            Err(e) if !e.is_retryable() => Err(Error::invalid_input(format!(
                                "email permanently rejected: {e}"
                            ))),
                            Err(e) => Err(e),
                        }
                    }
                },
                shutdown,
            )
            .await
    }
}
