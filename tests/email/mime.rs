//! An independent MIME reader (mail_parser) cross-checking what the SMTP servers, SES and the
//! file transport stored against `corekit::email::conformance::full_email`.

use corekit::email::conformance::full_email;
use mail_parser::{MessageParser, MimeHeaders};

fn norm(s: &str) -> String {
    s.replace("\r\n", "\n").trim_end().to_owned()
}

/// Checks raw MIME against `full_email(tag)`; `bcc_in_headers` is false for every transport
/// (Bcc recipients get the mail, other recipients must not see them).
pub fn check_mime(raw: &[u8], tag: &str) {
    let m = MessageParser::default().parse(raw).expect("parseable MIME");
    let email = full_email(tag);
    assert_eq!(m.subject(), Some(email.subject()), "subject");
    let from = m.from().and_then(|a| a.first()).expect("From");
    assert_eq!(
        (from.address(), from.name()),
        (Some("sender@example.com"), Some("Corekit Tests"))
    );
    let to: Vec<_> = m
        .to()
        .expect("To")
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to, ["ada@example.com", "grace@example.com"]);
    let cc = m.cc().and_then(|a| a.first()).expect("Cc");
    assert_eq!(
        (cc.address(), cc.name()),
        (Some("cc@example.com"), Some("Hopper, Grace"))
    );
    assert!(m.bcc().is_none(), "Bcc must not be in the headers");
    assert!(
        !String::from_utf8_lossy(raw).contains("hidden@example.com"),
        "the Bcc address must not appear in the message"
    );
    let reply = m.reply_to().and_then(|a| a.first()).expect("Reply-To");
    assert_eq!(reply.address(), Some("support@example.com"));
    assert_eq!(
        norm(&m.body_text(0).unwrap()),
        norm(email.text().unwrap()),
        "text body"
    );
    assert_eq!(
        norm(&m.body_html(0).unwrap()),
        norm(email.html().unwrap()),
        "html body"
    );
    let header = |name: &str| m.header_raw(name).map(|v| v.trim().to_owned());
    assert_eq!(header("X-Campaign").as_deref(), Some("welcome-2026"));
    assert_eq!(header("Idempotency-Key"), Some(format!("key-{tag}")));
    let (pdf_bytes, png_bytes) = (email.attachments()[0].data(), email.attachments()[1].data());
    let parts: Vec<_> = m.attachments().collect();
    let pdf = parts
        .iter()
        .find(|p| p.attachment_name() == Some("report.pdf"))
        .expect("the pdf attachment");
    assert_eq!(pdf.contents(), &pdf_bytes[..], "pdf bytes exact");
    let ct = pdf.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("application", Some("pdf")));
    let logo = parts
        .iter()
        .find(|p| p.content_id() == Some("logo"))
        .expect("the inline logo");
    assert_eq!(logo.contents(), &png_bytes[..], "inline bytes exact");
}
