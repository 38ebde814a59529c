//! An [`Email`] as a MIME message (lettre's builder): what SMTP sends, SES sends raw and the
//! file transport writes.

use super::{Address, Email, IDEMPOTENCY_HEADER};
use crate::{Error, Result};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as Part, Mailbox, MultiPart, SinglePart};

/// A subject holding `=?` would be decoded by readers as an RFC 2047 encoded word if sent as it
/// is (lettre sends ASCII unencoded): such subjects are encoded whole, so they read as written.
fn looks_encoded(subject: &str) -> bool {
    subject.contains("=?")
}

/// `subject` as UTF-8 base64 encoded words of at most 45 bytes of text each (RFC 2047 keeps a
/// word within 75 characters), separated by folding white space.
fn encoded_words(subject: &str) -> String {
    use base64::Engine as _;
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in subject.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(w.as_bytes());
            format!("=?utf-8?b?{b64}?=")
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

fn mailbox(a: &Address) -> Result<Mailbox> {
    let email = a
        .email()
        .parse::<lettre::Address>()
        .map_err(|e| Error::invalid_input(format!("address {:?}: {e}", a.email())))?;
    Ok(Mailbox::new(a.name().map(str::to_owned), email))
}

fn content_type(s: &str) -> Result<ContentType> {
    ContentType::parse(s).map_err(|e| Error::invalid_input(format!("content type {s:?}: {e}")))
}

/// The lettre message for `email` (its sender must be set).
pub(crate) fn message(email: &Email) -> Result<lettre::Message> {
    let from = email.sender()?;
    let mut b = lettre::Message::builder().from(mailbox(from)?);
    for a in &email.to {
        b = b.to(mailbox(a)?);
    }
    for a in &email.cc {
        b = b.cc(mailbox(a)?);
    }
    for a in &email.bcc {
        b = b.bcc(mailbox(a)?);
    }
    for a in &email.reply_to {
        b = b.reply_to(mailbox(a)?);
    }
    let id = email
        .idempotency_key
        .clone()
        .unwrap_or_else(|| format!("{:032x}", fastrand::u128(..)));
    // A stable Message-ID per idempotency key lets receivers spot a resent copy.
    let local: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    b = if looks_encoded(&email.subject) {
        b.raw_header(HeaderValue::dangerous_new_pre_encoded(
            HeaderName::new_from_ascii_str("Subject"),
            email.subject.clone(),
            encoded_words(&email.subject),
        ))
    } else {
        b.subject(email.subject.clone())
    };
    b = b.message_id(Some(format!("<{local}@{}>", from.domain())));
    let mut headers = email.headers.clone();
    if let Some(key) = &email.idempotency_key {
        headers.push((IDEMPOTENCY_HEADER.to_owned(), key.clone()));
    }
    if !email.tags.is_empty() {
        headers.push(("X-Tags".to_owned(), email.tags.join(",")));
    }
    for (name, value) in headers {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|e| Error::invalid_input(format!("header name {name:?}: {e}")))?;
        b = b.raw_header(HeaderValue::new(name, value));
    }

    let body = match (&email.text, &email.html) {
        (Some(t), Some(h)) => Body::Multi(MultiPart::alternative_plain_html(t.clone(), h.clone())),
        (Some(t), None) => Body::Single(SinglePart::plain(t.clone())),
        (None, Some(h)) => Body::Single(SinglePart::html(h.clone())),
        (None, None) => return Err(Error::invalid_input("email has no body")),
    };
    let (inline, attached): (Vec<_>, Vec<_>) = email
        .attachments
        .iter()
        .partition(|a| a.content_id().is_some());
    let body = if inline.is_empty() {
        body
    } else {
        let mut related = body.into_related();
        for a in inline {
            let cid = a.content_id().unwrap_or_default().to_owned();
            related = related.singlepart(
                Part::new_inline_with_name(cid, a.filename().to_owned())
                    .body(a.data().to_vec(), content_type(a.content_type())?),
            );
        }
        Body::Multi(related)
    };
    let body = if attached.is_empty() {
        body
    } else {
        let mut mixed = body.into_mixed();
        for a in attached {
            mixed = mixed.singlepart(
                Part::new(a.filename().to_owned())
                    .body(a.data().to_vec(), content_type(a.content_type())?),
            );
        }
        Body::Multi(mixed)
    };
    let built = match body {
        Body::Single(p) => b.singlepart(p),
        Body::Multi(m) => b.multipart(m),
    };
    built.map_err(|e| Error::invalid_input(format!("cannot build the MIME message: {e}")))
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

impl Body {
    fn into_related(self) -> MultiPart {
        match self {
            Body::Single(p) => MultiPart::related().singlepart(p),
            Body::Multi(m) => MultiPart::related().multipart(m),
        }
    }

    fn into_mixed(self) -> MultiPart {
        match self {
            Body::Single(p) => MultiPart::mixed().singlepart(p),
            Body::Multi(m) => MultiPart::mixed().multipart(m),
        }
    }
}

/// `email` as RFC 5322 bytes (CRLF line endings, Bcc left out), e.g. to store or inspect it.
///
/// # Errors
/// `InvalidInput` when the email has no sender.
pub fn to_mime(email: &Email) -> Result<Vec<u8>> {
    Ok(message(email)?.formatted())
}
