//! One email with every builder field, and the checks that what arrived is what was built.

use corekit::email::{Attachment, Email};
use mail_parser::{MessageParser, MimeHeaders};

/// Bytes that survive only a byte-exact transfer: every byte value, twice.
pub fn pdf_bytes() -> Vec<u8> {
    (0..=255u8).chain((0..=255u8).rev()).collect()
}

pub fn png_bytes() -> Vec<u8> {
    vec![
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0xff,
    ]
}

/// The full email; `tag` makes its subject unique so a shared server's mailbox can find it.
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
        .unwrap()
}

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
    let parts: Vec<_> = m.attachments().collect();
    let pdf = parts
        .iter()
        .find(|p| p.attachment_name() == Some("report.pdf"))
        .expect("the pdf attachment");
    assert_eq!(pdf.contents(), &pdf_bytes()[..], "pdf bytes exact");
    let ct = pdf.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("application", Some("pdf")));
    let logo = parts
        .iter()
        .find(|p| p.content_id() == Some("logo"))
        .expect("the inline logo");
    assert_eq!(logo.contents(), &png_bytes()[..], "inline bytes exact");
}
