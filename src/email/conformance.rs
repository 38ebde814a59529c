//! The behaviour every email [`Transport`] must have, as public async functions (feature
//! `testing`).
//!
//! Each function takes the transport and, when it must read what was delivered, an *inbox*: an
//! async closure that fetches the delivered message the transport's own way (an SMTP server's
//! HTTP API, the provider's stored raw message, the `.eml` file, the memory outbox). The inbox
//! gets the [`Email`] the check sent and what [`Transport::send`] answered, and returns the
//! message as [`Delivered`]: raw MIME, or an `Email` rebuilt from a structured API. Every email
//! a check sends has a subject and an idempotency key (`key-<tag>`) no other call uses, so
//! checks can share one mailbox and run in any order or at once. A check panics with a message
//! naming what broke.
//!
//! ```no_run
//! use corekit::email::conformance::{self, Delivered};
//! use corekit::email::{Email, MemoryTransport};
//! use std::sync::Arc;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn memory_transport_conforms() {
//!     let outbox = MemoryTransport::new();
//!     // The outbox keeps the emails themselves: the one with the same idempotency key.
//!     let inbox = |sent: Email, _id: Option<String>| {
//!         let outbox = outbox.clone();
//!         async move {
//!             let key = sent.idempotency_key();
//!             let found = outbox.sent().into_iter().find(|e| e.idempotency_key() == key);
//!             Delivered::Email(found.expect("the outbox has the email"))
//!         }
//!     };
//!     conformance::run_all(Arc::new(outbox.clone()), inbox).await;
//! }
//! # fn main() {}
//! ```
//!
//! A third-party transport is done when [`run_all`] passes on it. Calling the checks one by one
//! (one test each) names the failing behaviour in the test report.

mod mime;

use super::{Attachment, BoxFuture, Email, Mailer, Transport};
use crate::{ErrorKind, Result};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a transport delivered, as the caller's inbox found it.
#[derive(Debug, Clone, PartialEq, Eq)]
// One per delivery a check reads: boxing the email would only make every inbox write
// `Box::new`.
#[allow(clippy::large_enum_variant)]
pub enum Delivered {
    /// The raw MIME message (RFC 5322) a server received or stored: SMTP servers, SES's raw
    /// message, `.eml` files.
    Mime(Vec<u8>),
    /// The email rebuilt from what a structured API received (SendGrid's JSON) or kept (the
    /// memory outbox). Bcc recipients must be in it: the provider needs them to deliver.
    Email(Email),
}

/// A tag no other call uses, for subjects and idempotency keys (ASCII letters, digits, `-`).
pub fn unique_tag(name: &str) -> String {
    crate::testing::unique_name(name, '-')
}

/// An attachment whose bytes survive only a byte-exact transfer: every byte value, twice.
fn pdf_bytes() -> Vec<u8> {
    (0..=255u8).chain((0..=255u8).rev()).collect()
}

fn png_bytes() -> Vec<u8> {
    vec![
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0xff,
    ]
}

/// An email with every builder field set: a named sender, two `To` (one named), a `Cc` whose
/// name has a comma, a `Bcc`, `Reply-To`, a non-ASCII subject containing `tag`, a text body
/// with a line that is only a dot, HTML referring to an inline image, a PDF attachment, a
/// custom header, a tag and the idempotency key `key-<tag>`. Sender and recipients are at
/// `example.com`.
pub fn full_email(tag: &str) -> Email {
    Email::builder()
        .from("Corekit Tests <sender@example.com>")
        .to("Ada Lovelace <ada@example.com>")
        .to("grace@example.com")
        .cc("\"Hopper, Grace\" <cc@example.com>")
        .bcc("hidden@example.com")
        .reply_to("support@example.com")
        .subject(format!("Grüße {tag} ✓"))
        .text("Hello Ada,\nplain text with ünïcode.\n.\nA line that is only a dot above.")
        .html("<p>Hello <b>Ada</b>, <img src=\"cid:logo\"></p>")
        .attachment(Attachment::new(
            "report.pdf",
            "application/pdf",
            pdf_bytes(),
        ))
        .attachment(Attachment::inline(
            "logo",
            "logo.png",
            "image/png",
            png_bytes(),
        ))
        .header("X-Campaign", "welcome-2026")
        .tag("welcome")
        .idempotency_key(format!("key-{tag}"))
        .build()
        .expect("the full email builds")
}

/// A short text email from `conformance@example.com` with `tag` in its subject.
fn plain_email(tag: &str) -> Email {
    Email::builder()
        .from("Corekit Conformance <conformance@example.com>")
        .to("ada@example.com")
        .subject(format!("plain {tag}"))
        .text(format!("Hello from {tag}."))
        .idempotency_key(format!("key-{tag}"))
        .build()
        .expect("a plain email builds")
}

/// The transport the suite was given, lent to a [`Mailer`], counting the sends that reach it.
struct Lent {
    transport: Arc<dyn Transport>,
    sends: Arc<AtomicUsize>,
}

impl Transport for Lent {
    fn name(&self) -> &'static str {
        self.transport.name()
    }

    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, Result<Option<String>>> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        self.transport.send(email)
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        self.transport.ping()
    }
}

/// Every check, one after the other, on `transport`, reading deliveries through `inbox`.
pub async fn run_all<I, Fut>(transport: Arc<dyn Transport>, inbox: I)
where
    I: Fn(Email, Option<String>) -> Fut,
    Fut: Future<Output = Delivered>,
{
    // Each check boxed: together their futures overflow a test thread's stack in debug builds.
    Box::pin(ping_answers(transport.clone())).await;
    Box::pin(a_plain_email_arrives(transport.clone(), &inbox)).await;
    Box::pin(every_field_arrives_intact(transport.clone(), &inbox)).await;
    Box::pin(concurrent_sends_all_arrive(transport.clone(), &inbox)).await;
    Box::pin(a_large_attachment_arrives_byte_exact(
        transport.clone(),
        &inbox,
    ))
    .await;
    Box::pin(bad_input_never_reaches_the_transport(transport.clone())).await;
    Box::pin(the_mailer_fills_in_the_sender(transport, &inbox)).await;
}

/// `ping` answers, and the transport has a name for errors and spans.
pub async fn ping_answers(transport: Arc<dyn Transport>) {
    transport.ping().await.expect("ping");
    let name = transport.name();
    assert!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()),
        "a short printable name: {name:?}"
    );
}

/// A short text email is accepted (`send` answers `Ok`, with a non-empty id when there is
/// one) and arrives with its sender, recipient, subject and body.
pub async fn a_plain_email_arrives<I, Fut>(transport: Arc<dyn Transport>, inbox: I)
where
    I: Fn(Email, Option<String>) -> Fut,
    Fut: Future<Output = Delivered>,
{
    let email = plain_email(&unique_tag("plain"));
    let id = transport.send(&email).await.expect("send a plain email");
    if let Some(id) = &id {
        assert!(!id.is_empty(), "a message id, when given, is not empty");
    }
    let delivered = inbox(email.clone(), id).await;
    assert_delivered(&email, &delivered);
}

/// Every field of [`full_email`] arrives: names and addresses, the non-ASCII subject, text and
/// HTML bodies, the custom header and idempotency key, the attachment and the inline image
/// byte-exact. Bcc recipients are delivered to but never shown in a MIME message.
pub async fn every_field_arrives_intact<I, Fut>(transport: Arc<dyn Transport>, inbox: I)
where
    I: Fn(Email, Option<String>) -> Fut,
    Fut: Future<Output = Delivered>,
{
    let email = full_email(&unique_tag("full"));
    let id = transport.send(&email).await.expect("send the full email");
    let delivered = inbox(email.clone(), id).await;
    assert_delivered(&email, &delivered);
}

/// Ten sends at once all succeed and all arrive; the ids given are distinct.
pub async fn concurrent_sends_all_arrive<I, Fut>(transport: Arc<dyn Transport>, inbox: I)
where
    I: Fn(Email, Option<String>) -> Fut,
    Fut: Future<Output = Delivered>,
{
    let tag = unique_tag("batch");
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let transport = transport.clone();
            let email = plain_email(&format!("{tag}-{i}"));
            tokio::spawn(async move {
                let id = transport.send(&email).await;
                (email, id)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let (email, id) = task.await.expect("a send task");
        let id = id.unwrap_or_else(|e| panic!("concurrent send of {:?}: {e}", email.subject()));
        ids.extend(id.clone());
        let delivered = inbox(email.clone(), id).await;
        assert_delivered(&email, &delivered);
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "message ids are distinct");
}

/// A 300 kB binary attachment arrives byte-exact.
pub async fn a_large_attachment_arrives_byte_exact<I, Fut>(transport: Arc<dyn Transport>, inbox: I)
where
    I: Fn(Email, Option<String>) -> Fut,
    Fut: Future<Output = Delivered>,
{
    let tag = unique_tag("large");
    // A prime period, so a dropped or repeated chunk shows.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let email = Email::builder()
        .from("conformance@example.com")
        .to("ada@example.com")
        .subject(format!("large {tag}"))
        .text("See the attachment.")
        .attachment(Attachment::new(
            "data.bin",
            "application/octet-stream",
            data,
        ))
        .idempotency_key(format!("key-{tag}"))
        .build()
        .expect("an email with a large attachment builds");
    let id = transport
        .send(&email)
        .await
        .expect("send a large attachment");
    let delivered = inbox(email.clone(), id).await;
    assert_delivered(&email, &delivered);
}

/// Header injection, a missing recipient or body, and a bad address are refused when the
/// email is built (`InvalidInput`); a [`Mailer`] refuses an email with no sender
/// (`InvalidInput`, not retryable). None of them reaches the transport.
pub async fn bad_input_never_reaches_the_transport(transport: Arc<dyn Transport>) {
    let base = || {
        Email::builder()
            .from("conformance@example.com")
            .to("ada@example.com")
            .subject("bad input")
            .text("x")
    };
    let cases = [
        (
            "subject injection",
            base().subject("Hi\r\nBcc: v@example.com"),
        ),
        (
            "header injection",
            base().header("X-A", "1\r\nBcc: v@example.com"),
        ),
        (
            "no recipient",
            Email::builder().from("conformance@example.com").text("x"),
        ),
        ("no body", Email::builder().to("ada@example.com")),
        ("bad address", base().to("not an address")),
    ];
    for (what, builder) in cases {
        let e = builder.build().expect_err(what);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
    }
    let sends = Arc::new(AtomicUsize::new(0));
    let mailer = Mailer::new(Lent {
        transport,
        sends: sends.clone(),
    });
    let no_sender = Email::builder()
        .to("ada@example.com")
        .subject("no sender")
        .text("x")
        .build()
        .expect("an email without a sender builds");
    let e = mailer
        .send(no_sender)
        .await
        .expect_err("a mailer without a default sender");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!e.is_retryable(), "a missing sender is permanent: {e}");
    assert_eq!(
        sends.load(Ordering::SeqCst),
        0,
        "bad input never reaches the transport"
    );
}

/// A [`Mailer`] over the transport fills in its default sender, sends once, and reports the
/// transport's name; the email arrives from that sender.
pub async fn the_mailer_fills_in_the_sender<I, Fut>(transport: Arc<dyn Transport>, inbox: I)
where
    I: Fn(Email, Option<String>) -> Fut,
    Fut: Future<Output = Delivered>,
{
    let name = transport.name();
    let sends = Arc::new(AtomicUsize::new(0));
    let mailer = Mailer::builder(Lent {
        transport,
        sends: sends.clone(),
    })
    .default_from("Corekit Default <default@example.com>")
    .expect("a valid default sender")
    .build();
    let tag = unique_tag("mailer");
    let email = Email::builder()
        .to("ada@example.com")
        .subject(format!("mailer {tag}"))
        .text("Sent through a Mailer.")
        .idempotency_key(format!("key-{tag}"))
        .build()
        .expect("an email without a sender builds");
    let sent = mailer.send(email).await.expect("send through a mailer");
    assert_eq!(sent.transport, name, "Sent names the transport");
    assert_eq!(sent.attempts, 1, "one attempt: {sent:?}");
    assert_eq!(sends.load(Ordering::SeqCst), 1, "one send reached it");
    let expected = Email::builder()
        .from("Corekit Default <default@example.com>")
        .to("ada@example.com")
        .subject(format!("mailer {tag}"))
        .text("Sent through a Mailer.")
        .idempotency_key(format!("key-{tag}"))
        .build()
        .expect("the expected email builds");
    let delivered = inbox(expected.clone(), sent.message_id).await;
    assert_delivered(&expected, &delivered);
}

/// Asserts that `delivered` is `sent`: sender, recipients, subject, bodies, custom headers,
/// idempotency key and attachments. A MIME message must not show Bcc recipients; an email
/// rebuilt from an API must have them.
///
/// # Panics
/// Naming the first field that differs.
pub fn assert_delivered(sent: &Email, delivered: &Delivered) {
    let got = match delivered {
        Delivered::Email(email) => View::of_email(email),
        Delivered::Mime(raw) => {
            let view = View::of_mime(raw);
            for hidden in sent.bcc() {
                assert!(
                    !String::from_utf8_lossy(raw).contains(hidden.email()),
                    "Bcc {} must not appear in the message",
                    hidden.email()
                );
            }
            view
        }
    };
    let want = View::of_email(sent);
    let subject = sent.subject();
    assert_eq!(got.subject, want.subject, "subject of {subject:?}");
    assert_eq!(got.from, want.from, "From of {subject:?}");
    assert_eq!(got.to, want.to, "To of {subject:?}");
    assert_eq!(got.cc, want.cc, "Cc of {subject:?}");
    assert_eq!(got.reply_to, want.reply_to, "Reply-To of {subject:?}");
    match delivered {
        Delivered::Email(_) => assert_eq!(got.bcc, want.bcc, "Bcc of {subject:?}"),
        Delivered::Mime(_) => assert!(got.bcc.is_empty(), "a Bcc header in {subject:?}"),
    }
    assert_eq!(got.text, want.text, "text body of {subject:?}");
    assert_eq!(got.html, want.html, "HTML body of {subject:?}");
    for (name, value) in sent.headers() {
        assert!(
            got.headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && v == value),
            "header {name}: {value} of {subject:?} in {:?}",
            got.headers
        );
    }
    assert_eq!(
        got.idempotency_key, want.idempotency_key,
        "idempotency key of {subject:?}"
    );
    assert_eq!(
        got.attachments.len(),
        want.attachments.len(),
        "attachments of {subject:?}"
    );
    for a in &want.attachments {
        let b = got
            .attachments
            .iter()
            .find(|b| b.filename == a.filename)
            .unwrap_or_else(|| panic!("attachment {:?} of {subject:?}", a.filename));
        assert_eq!(
            (&b.content_type, &b.content_id),
            (&a.content_type, &a.content_id),
            "content type and id of {:?}",
            a.filename
        );
        assert!(
            b.data == a.data,
            "bytes of {:?}: {} received, {} sent",
            a.filename,
            b.data.len(),
            a.data.len()
        );
    }
}

/// The fields the suite compares, read from an [`Email`] or a MIME message.
#[derive(Debug, Default)]
struct View {
    subject: String,
    from: Vec<(Option<String>, String)>,
    to: Vec<(Option<String>, String)>,
    cc: Vec<(Option<String>, String)>,
    bcc: Vec<(Option<String>, String)>,
    reply_to: Vec<(Option<String>, String)>,
    text: Option<String>,
    html: Option<String>,
    headers: Vec<(String, String)>,
    idempotency_key: Option<String>,
    attachments: Vec<Part>,
}

/// An attachment or inline part.
#[derive(Debug)]
struct Part {
    filename: String,
    content_type: String,
    content_id: Option<String>,
    data: Vec<u8>,
}

/// Line endings as `\n`, trailing whitespace dropped: what survives every transport.
fn norm(s: &str) -> String {
    s.replace("\r\n", "\n").trim_end().to_owned()
}

impl View {
    fn of_email(e: &Email) -> Self {
        let list = |a: &[super::Address]| {
            a.iter()
                .map(|a| (a.name().map(str::to_owned), a.email().to_owned()))
                .collect()
        };
        let mut headers = e.headers().to_vec();
        let key = e.idempotency_key().map(str::to_owned).or_else(|| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(super::IDEMPOTENCY_HEADER))
                .map(|(_, v)| v.clone())
        });
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(super::IDEMPOTENCY_HEADER));
        Self {
            subject: e.subject().to_owned(),
            from: e
                .from_address()
                .map(|a| list(std::slice::from_ref(a)))
                .unwrap_or_default(),
            to: list(e.to()),
            cc: list(e.cc()),
            bcc: list(e.bcc()),
            reply_to: list(e.reply_to()),
            text: e.text().map(norm),
            html: e.html().map(norm),
            headers,
            idempotency_key: key,
            attachments: e
                .attachments()
                .iter()
                .map(|a| Part {
                    filename: a.filename().to_owned(),
                    content_type: a.content_type().to_ascii_lowercase(),
                    content_id: a.content_id().map(str::to_owned),
                    data: a.data().to_vec(),
                })
                .collect(),
        }
    }

    fn of_mime(raw: &[u8]) -> Self {
        let message = mime::Entity::parse(raw);
        let header = |name: &str| message.header(name).map(mime::decode_words);
        let addresses = |name: &str| {
            message
                .header(name)
                .map(mime::addresses)
                .unwrap_or_default()
        };
        let mut view = Self {
            subject: header("subject").unwrap_or_default(),
            from: addresses("from"),
            to: addresses("to"),
            cc: addresses("cc"),
            bcc: addresses("bcc"),
            reply_to: addresses("reply-to"),
            headers: message
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), mime::decode_words(v)))
                .collect(),
            idempotency_key: header(super::IDEMPOTENCY_HEADER),
            ..Self::default()
        };
        for leaf in message.leaves() {
            let media = leaf.media_type();
            let disposition = leaf.header("content-disposition").unwrap_or_default();
            let filename = mime::param(disposition, "filename")
                .or_else(|| mime::param(leaf.header("content-type").unwrap_or_default(), "name"));
            match filename {
                Some(filename) => view.attachments.push(Part {
                    filename,
                    content_type: media,
                    content_id: leaf.header("content-id").map(|id| {
                        id.trim()
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_owned()
                    }),
                    data: leaf.decoded_body(),
                }),
                None if media == "text/plain" && view.text.is_none() => {
                    view.text = Some(norm(&String::from_utf8_lossy(&leaf.decoded_body())));
                }
                None if media == "text/html" && view.html.is_none() => {
                    view.html = Some(norm(&String::from_utf8_lossy(&leaf.decoded_body())));
                }
                None => {}
            }
        }
        view
    }
}
