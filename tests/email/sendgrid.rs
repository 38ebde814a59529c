//! SendGrid has no emulator: a local HTTP double checks the exact v3 request and answers with
//! the statuses the API documents.

use base64::Engine as _;
use corekit::ErrorKind;
use corekit::email::conformance::full_email;
use corekit::email::{Mailer, Retry, SendGridTransport, Transport};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "SG.test-key";

fn transport(server: &MockServer) -> SendGridTransport {
    SendGridTransport::builder(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn accept(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "sg-message-1"))
        .mount(server)
        .await;
}

#[tokio::test]
async fn the_request_is_the_documented_v3_body() {
    let server = MockServer::start().await;
    accept(&server).await;
    let sent = Mailer::new(transport(&server))
        .send(full_email("sg"))
        .await
        .unwrap();
    assert_eq!(sent.message_id.as_deref(), Some("sg-message-1"));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let email = full_email("sg");
    let (pdf, png) = (email.attachments()[0].data(), email.attachments()[1].data());
    let expected = json!({
        "personalizations": [{
            "to": [{"email": "ada@example.com", "name": "Ada Lovelace"}, {"email": "grace@example.com"}],
            "cc": [{"email": "cc@example.com", "name": "Hopper, Grace"}],
            "bcc": [{"email": "hidden@example.com"}],
        }],
        "from": {"email": "sender@example.com", "name": "Corekit Tests"},
        "reply_to": {"email": "support@example.com"},
        "subject": "Grüße sg ✓",
        "content": [
            {"type": "text/plain", "value": "Hello Ada,\nplain text with ünïcode.\n.\nA line that is only a dot above."},
            {"type": "text/html", "value": "<p>Hello <b>Ada</b>, <img src=\"cid:logo\"></p>"},
        ],
        "attachments": [
            {"content": b64(pdf), "type": "application/pdf", "filename": "report.pdf", "disposition": "attachment"},
            {"content": b64(png), "type": "image/png", "filename": "logo.png", "disposition": "inline", "content_id": "logo"},
        ],
        "headers": {"X-Campaign": "welcome-2026", "Idempotency-Key": "key-sg"},
        "custom_args": {"idempotency_key": "key-sg"},
        "categories": ["welcome"],
    });
    assert_eq!(body, expected);
}

#[tokio::test]
async fn a_429_is_retried_and_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(
                json!({"errors": [{"field": null, "message": "too many requests"}]}),
            ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    accept(&server).await;
    let mailer = Mailer::builder(transport(&server))
        .retry(Retry::new(3, Duration::from_millis(10)))
        .build();
    let sent = mailer.send(full_email("retry")).await.unwrap();
    assert_eq!(sent.attempts, 2);
    // The same idempotency key on both attempts.
    let keys: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["custom_args"].clone())
        .collect();
    assert_eq!(keys[0], keys[1]);
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_say_why() {
    for (status, body, kind) in [
        (
            400,
            json!({"errors": [{"field": "from.email", "message": "does not contain a valid address", "help": null}]}),
            ErrorKind::InvalidInput,
        ),
        (
            401,
            json!({"errors": [{"field": null, "message": "authorization required"}]}),
            ErrorKind::PermissionDenied,
        ),
        (
            403,
            json!({"errors": [{"field": null, "message": "access forbidden"}]}),
            ErrorKind::PermissionDenied,
        ),
        (
            413,
            json!({"errors": [{"field": null, "message": "content too large"}]}),
            ErrorKind::InvalidInput,
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let mailer = Mailer::builder(transport(&server))
            .retry(Retry::new(3, Duration::from_millis(10)))
            .build();
        let e = mailer.send(full_email("perm")).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{status}: {e}");
        assert!(!e.is_retryable());
        assert!(e.to_string().contains(&status.to_string()), "{e}");
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "{status}: not retried"
        );
    }
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"errors": [{"field": "from.email", "message": "does not contain a valid address"}]}),
        ))
        .mount(&server)
        .await;
    let e = transport(&server)
        .send(&full_email("field"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("from.email: does not contain a valid address"),
        "{e}"
    );
}

#[tokio::test]
async fn a_5xx_exhausts_retries_then_fails_over() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let outbox = corekit::email::MemoryTransport::new();
    let mailer = Mailer::builder(transport(&server))
        .retry(Retry::new(2, Duration::from_millis(10)))
        .fallback(outbox.clone())
        .build();
    let sent = mailer.send(full_email("failover")).await.unwrap();
    assert_eq!((sent.transport, sent.attempts), ("memory", 3));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert_eq!(outbox.sent().len(), 1);
}

#[tokio::test]
async fn a_stalled_api_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let t = SendGridTransport::builder(KEY)
        .base_url(server.uri())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let start = std::time::Instant::now();
    let e = t.send(&full_email("stall")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_retryable());
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn ping_reads_the_key_scopes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/scopes"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"scopes": ["mail.send"]})))
        .mount(&server)
        .await;
    Mailer::new(transport(&server)).ping().await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one GET, no email sent");
}

#[tokio::test]
async fn ping_with_a_revoked_key_is_permission_denied() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/scopes"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"errors": [{"field": null, "message": "authorization required"}]}),
        ))
        .mount(&server)
        .await;
    let e = Mailer::new(transport(&server)).ping().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(!e.to_string().contains(KEY), "key leaked: {e}");
}

/// The conformance suite on the double: it accepts every send with its own message id, and
/// the inbox rebuilds the email from the JSON it received.
mod suite {
    use super::KEY;
    use crate::conformance::Inbox;
    use base64::Engine as _;
    use corekit::email::conformance::Delivered;
    use corekit::email::{Attachment, Email, SendGridTransport, Transport};
    use serde_json::Value;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// `Name <address>` (name quoted) or the bare address, from a v3 `{email, name}` object.
    fn address(v: &Value) -> String {
        let email = v["email"].as_str().unwrap();
        match v["name"].as_str() {
            Some(name) => format!("\"{}\" <{email}>", name.replace('"', "\\\"")),
            None => email.to_owned(),
        }
    }

    /// The email a v3 `mail/send` body describes.
    fn rebuilt(body: &Value) -> Email {
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let p = &body["personalizations"][0];
        let mut b = Email::builder()
            .from(address(&body["from"]))
            .subject(body["subject"].as_str().unwrap_or_default());
        for a in list(&p["to"]) {
            b = b.to(address(&a));
        }
        for a in list(&p["cc"]) {
            b = b.cc(address(&a));
        }
        for a in list(&p["bcc"]) {
            b = b.bcc(address(&a));
        }
        if body["reply_to"].is_object() {
            b = b.reply_to(address(&body["reply_to"]));
        }
        for a in list(&body["reply_to_list"]) {
            b = b.reply_to(address(&a));
        }
        for c in list(&body["content"]) {
            let value = c["value"].as_str().unwrap().to_owned();
            match c["type"].as_str() {
                Some("text/plain") => b = b.text(value),
                Some("text/html") => b = b.html(value),
                other => panic!("content type {other:?}"),
            }
        }
        for a in list(&body["attachments"]) {
            let data = base64::engine::general_purpose::STANDARD
                .decode(a["content"].as_str().unwrap())
                .unwrap();
            let (name, ty) = (a["filename"].as_str().unwrap(), a["type"].as_str().unwrap());
            b = b.attachment(match a["content_id"].as_str() {
                Some(cid) if a["disposition"] == "inline" => {
                    Attachment::inline(cid, name, ty, data)
                }
                _ => Attachment::new(name, ty, data),
            });
        }
        if let Some(headers) = body["headers"].as_object() {
            for (name, value) in headers {
                let value = value.as_str().unwrap();
                b = if name == "Idempotency-Key" {
                    b.idempotency_key(value)
                } else {
                    b.header(name, value)
                };
            }
        }
        for tag in list(&body["categories"]) {
            b = b.tag(tag.as_str().unwrap());
        }
        b.build().unwrap()
    }

    async fn setup() -> (Arc<dyn Transport>, Inbox) {
        let server = Arc::new(MockServer::start().await);
        let next = AtomicU64::new(0);
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(move |_: &wiremock::Request| {
                let id = next.fetch_add(1, Ordering::SeqCst);
                ResponseTemplate::new(202).insert_header("X-Message-Id", format!("sg-{id}"))
            })
            .mount(&server)
            .await;
        // Any read (a readiness probe) answers.
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
            .mount(&server)
            .await;
        let transport = SendGridTransport::builder(KEY)
            .base_url(server.uri())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let inbox: Inbox = Box::new(move |sent, _id| {
            let server = server.clone();
            Box::pin(async move {
                let key = sent.idempotency_key().expect("the suite sets a key");
                let requests = server.received_requests().await.unwrap();
                let body = requests
                    .iter()
                    .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
                    .find(|b| b["custom_args"]["idempotency_key"] == key)
                    .unwrap_or_else(|| panic!("the double received no email with key {key}"));
                Delivered::Email(rebuilt(&body))
            })
        });
        (Arc::new(transport), inbox)
    }

    crate::email_suite!();
}
