//! The email itself: built once, checked once, read by every transport.

use super::Address;
use crate::{Error, Result};
use bytes::Bytes;

/// A file attached to an email, or an inline image referenced from the HTML by its content id
/// (`<img src="cid:logo">`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    filename: String,
    content_type: String,
    data: Bytes,
    content_id: Option<String>,
}

impl Attachment {
    /// A regular attachment.
    pub fn new(
        filename: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        Self {
            filename: filename.into(),
            content_type: content_type.into(),
            data: data.into(),
            content_id: None,
        }
    }

    /// An inline part (typically an image) the HTML body refers to as `cid:<content_id>`.
    pub fn inline(
        content_id: impl Into<String>,
        filename: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        Self {
            content_id: Some(content_id.into()),
            ..Self::new(filename, content_type, data)
        }
    }

    /// The file name.
    pub fn filename(&self) -> &str {
        &self.filename
    }

    /// The MIME type, e.g. `application/pdf`.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The content id of an inline part.
    pub fn content_id(&self) -> Option<&str> {
        self.content_id.as_deref()
    }

    fn check(&self) -> Result<()> {
        let bad =
            |why: String| Error::invalid_input(format!("attachment {:?}: {why}", self.filename));
        if self.filename.is_empty()
            || self.filename.len() > 255
            || self
                .filename
                .chars()
                .any(|c| c.is_control() || c == '/' || c == '\\' || c == '"')
        {
            return Err(bad("file name must be 1 to 255 characters without control characters, slashes or quotes".into()));
        }
        let (ty, sub) = self.content_type.split_once('/').unwrap_or(("", ""));
        let token = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
        };
        if !token(ty) || !token(sub) {
            return Err(bad(format!(
                "content type {:?} is not type/subtype",
                self.content_type
            )));
        }
        if let Some(cid) = &self.content_id
            && (cid.is_empty()
                || !cid
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"<>\"".contains(c)))
        {
            return Err(bad(format!(
                "content id {cid:?} must be printable ASCII without <, > or quotes"
            )));
        }
        Ok(())
    }
}

/// A validated email; build one with [`Email::builder`].
///
/// ```
/// use corekit::email::{Attachment, Email};
///
/// let email = Email::builder()
///     .from("Acme <billing@acme.example>")
///     .to("ada@example.com")
///     .cc("accounts@example.com")
///     .subject("Your invoice")
///     .text("Attached.")
///     .attachment(Attachment::new("invoice.pdf", "application/pdf", b"%PDF-1.7".to_vec()))
///     .build()?;
/// assert_eq!(email.to().len(), 1);
/// // Addresses are parsed and header injection is refused when the email is built:
/// assert!(Email::builder().to("ada@example.com\r\nBcc: x@evil").subject("s").text("t").build().is_err());
/// # Ok::<(), corekit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub(crate) from: Option<Address>,
    pub(crate) to: Vec<Address>,
    pub(crate) cc: Vec<Address>,
    pub(crate) bcc: Vec<Address>,
    pub(crate) reply_to: Vec<Address>,
    pub(crate) subject: String,
    pub(crate) text: Option<String>,
    pub(crate) html: Option<String>,
    pub(crate) attachments: Vec<Attachment>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) tags: Vec<String>,
    pub(crate) idempotency_key: Option<String>,
}

/// Header names the builder sets itself; a custom header may not use them.
const RESERVED_HEADERS: [&str; 13] = [
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "sender",
];

/// Most tags an email may carry (SendGrid's category limit).
pub const MAX_TAGS: usize = 10;

/// Builds an [`Email`]; every value is checked in [`build`](Self::build).
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct EmailBuilder {
    from: Option<String>,
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    reply_to: Vec<String>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    attachments: Vec<Attachment>,
    headers: Vec<(String, String)>,
    tags: Vec<String>,
    idempotency_key: Option<String>,
}

impl EmailBuilder {
    /// The sender (optional here: [`Mailer`](super::Mailer) fills in its default, `EMAIL_FROM`).
    pub fn from(mut self, address: impl Into<String>) -> Self {
        self.from = Some(address.into());
        self
    }

    /// Adds a `To` recipient.
    pub fn to(mut self, address: impl Into<String>) -> Self {
        self.to.push(address.into());
        self
    }

    /// Adds a `Cc` recipient.
    pub fn cc(mut self, address: impl Into<String>) -> Self {
        self.cc.push(address.into());
        self
    }

    /// Adds a `Bcc` recipient (delivered to, never shown in the headers).
    pub fn bcc(mut self, address: impl Into<String>) -> Self {
        self.bcc.push(address.into());
        self
    }

    /// Adds a `Reply-To` address.
    pub fn reply_to(mut self, address: impl Into<String>) -> Self {
        self.reply_to.push(address.into());
        self
    }

    /// The subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// The plain-text body.
    pub fn text(mut self, body: impl Into<String>) -> Self {
        self.text = Some(body.into());
        self
    }

    /// The HTML body.
    pub fn html(mut self, body: impl Into<String>) -> Self {
        self.html = Some(body.into());
        self
    }

    /// Adds an attachment or inline part.
    pub fn attachment(mut self, attachment: Attachment) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Adds a custom header (e.g. `List-Unsubscribe`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a tag (SendGrid category, SES message tag `tag=...`), at most [`MAX_TAGS`].
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The idempotency key: kept across [`Mailer`](super::Mailer)'s retries and sent as the
    /// `Idempotency-Key` header (none of SMTP, SendGrid or SES de-duplicates by key; receivers
    /// and your own logs can).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Checks everything and builds the email.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) naming the first problem: an address
    /// that does not parse, no recipient, no body, CR/LF in the subject or a header, a reserved
    /// or malformed header name, a bad attachment, too many or malformed tags.
    pub fn build(self) -> Result<Email> {
        let parse_all = |list: Vec<String>, field: &str| -> Result<Vec<Address>> {
            list.iter()
                .map(|a| {
                    a.parse::<Address>()
                        .map_err(|e| Error::invalid_input(format!("{field}: {}", e.message())))
                })
                .collect()
        };
        let from = self
            .from
            .map(|f| {
                f.parse::<Address>()
                    .map_err(|e| Error::invalid_input(format!("from: {}", e.message())))
            })
            .transpose()?;
        let email = Email {
            from,
            to: parse_all(self.to, "to")?,
            cc: parse_all(self.cc, "cc")?,
            bcc: parse_all(self.bcc, "bcc")?,
            reply_to: parse_all(self.reply_to, "reply-to")?,
            subject: self.subject,
            text: self.text.map(|t| one_line_ending(&t)),
            html: self.html.map(|h| one_line_ending(&h)),
            attachments: self.attachments,
            headers: self.headers,
            tags: self.tags,
            idempotency_key: self.idempotency_key,
        };
        email.check()?;
        Ok(email)
    }
}

/// `\r\n` and a bare `\r` become `\n`, which the MIME writer sends as CRLF: a bare CR is not
/// allowed in a message (RFC 5322) and is an ingredient of SMTP smuggling.
fn one_line_ending(body: &str) -> String {
    if body.contains('\r') {
        body.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        body.to_owned()
    }
}

fn no_line_breaks(what: &str, value: &str) -> Result<()> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(Error::invalid_input(format!(
            "{what} {value:?} contains CR, LF or NUL (header injection)"
        )));
    }
    Ok(())
}

impl Email {
    /// A builder.
    pub fn builder() -> EmailBuilder {
        EmailBuilder::default()
    }

    fn check(&self) -> Result<()> {
        if self.to.is_empty() && self.cc.is_empty() && self.bcc.is_empty() {
            return Err(Error::invalid_input(
                "email has no recipient (to, cc or bcc)",
            ));
        }
        let empty = |b: &Option<String>| b.as_deref().is_none_or(str::is_empty);
        if empty(&self.text) && empty(&self.html) {
            return Err(Error::invalid_input("email has no body (text or html)"));
        }
        no_line_breaks("subject", &self.subject)?;
        for (name, value) in &self.headers {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(Error::invalid_input(format!(
                    "header name {name:?} must be printable ASCII without spaces or ':'"
                )));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(Error::invalid_input(format!(
                    "header {name:?} is set by the builder; use its own method"
                )));
            }
            no_line_breaks(&format!("header {name}"), value)?;
        }
        for a in &self.attachments {
            a.check()?;
        }
        if self.tags.len() > MAX_TAGS {
            return Err(Error::invalid_input(format!(
                "{} tags, over the maximum of {MAX_TAGS}",
                self.tags.len()
            )));
        }
        for tag in &self.tags {
            if tag.is_empty()
                || tag.len() > 255
                || !tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            {
                return Err(Error::invalid_input(format!(
                    "tag {tag:?} must be 1 to 255 ASCII letters, digits, '_', '-' or '.'"
                )));
            }
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(Error::invalid_input(format!(
                "idempotency key {key:?} must be 1 to 255 printable ASCII characters"
            )));
        }
        Ok(())
    }

    /// The sender, once set (by the builder or the mailer's default).
    pub fn from_address(&self) -> Option<&Address> {
        self.from.as_ref()
    }

    /// `To` recipients.
    pub fn to(&self) -> &[Address] {
        &self.to
    }

    /// `Cc` recipients.
    pub fn cc(&self) -> &[Address] {
        &self.cc
    }

    /// `Bcc` recipients.
    pub fn bcc(&self) -> &[Address] {
        &self.bcc
    }

    /// `Reply-To` addresses.
    pub fn reply_to(&self) -> &[Address] {
        &self.reply_to
    }

    /// Every recipient: to, cc, then bcc.
    pub fn recipients(&self) -> impl Iterator<Item = &Address> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The plain-text body.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The HTML body.
    pub fn html(&self) -> Option<&str> {
        self.html.as_deref()
    }

    /// Attachments and inline parts.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Custom headers, in the order added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The idempotency key.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// Sets the sender when none was given.
    pub(crate) fn default_from(&mut self, from: &Address) {
        if self.from.is_none() {
            self.from = Some(from.clone());
        }
    }

    /// The sender, or `InvalidInput` when there is none.
    pub(crate) fn sender(&self) -> Result<&Address> {
        self.from.as_ref().ok_or_else(|| {
            Error::invalid_input("email has no sender: set it on the builder or EMAIL_FROM")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn base() -> EmailBuilder {
        Email::builder()
            .from("App <app@example.com>")
            .to("ada@example.com")
            .subject("Hi")
            .text("Hello")
    }

    #[test]
    fn a_complete_email_builds() {
        let e = base()
            .cc("b@example.com")
            .bcc("c@example.com")
            .reply_to("support@example.com")
            .html("<p>Hello</p>")
            .attachment(Attachment::new("a.pdf", "application/pdf", vec![1, 2, 3]))
            .attachment(Attachment::inline("logo", "logo.png", "image/png", vec![9]))
            .header("List-Unsubscribe", "<mailto:u@example.com>")
            .tag("welcome")
            .idempotency_key("order-7-confirmation")
            .build()
            .unwrap();
        assert_eq!(e.recipients().count(), 3);
        assert_eq!(e.attachments()[1].content_id(), Some("logo"));
    }

    #[test]
    fn bad_input_is_invalid_input() {
        let cases = [
            (
                "no recipient",
                Email::builder().from("a@example.com").text("x"),
            ),
            ("no body", Email::builder().to("a@example.com")),
            ("bad to", base().to("not an address")),
            ("bad from", base().from("x@")),
            (
                "subject injection",
                base().subject("Hi\r\nBcc: v@example.com"),
            ),
            (
                "header injection",
                base().header("X-A", "1\r\nBcc: v@example.com"),
            ),
            ("header name", base().header("X A", "1")),
            ("reserved header", base().header("Bcc", "v@example.com")),
            (
                "attachment name",
                base().attachment(Attachment::new("a\n.pdf", "application/pdf", vec![])),
            ),
            (
                "attachment type",
                base().attachment(Attachment::new("a.pdf", "pdf", vec![])),
            ),
            ("tag", base().tag("has space")),
            (
                "too many tags",
                (0..11).fold(base(), |b, i| b.tag(format!("t{i}"))),
            ),
            ("idempotency key", base().idempotency_key("a b")),
        ];
        for (what, builder) in cases {
            let e = builder.build().expect_err(what);
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
        }
    }
}
