//! Amazon SES v2 against moto's server: the raw MIME SES stored is what was built.

use crate::mime::check_mime;
use crate::support;
use corekit::email::conformance::full_email;
use corekit::email::{Mailer, SesTransport};
use std::time::Duration;

/// An SES client for `endpoint` with static test credentials (moto accepts any).
fn client(endpoint: &str) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "testing", "testing", None, None, "static",
        ))
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

async fn transport() -> SesTransport {
    let client = client(&support::SES.require());
    client
        .create_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .ok(); // already there on a second run
    SesTransport::new(client).timeout(Duration::from_secs(10))
}

/// Every string in moto's state dump, depth first.
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn ses_stores_every_field_byte_exact() {
    let transport = transport().await;
    let tag = support::unique("ses");
    let sent = Mailer::new(transport).send(full_email(&tag)).await.unwrap();
    assert_eq!(sent.transport, "ses");
    assert!(sent.message_id.is_some(), "SES returns a message id");
    let endpoint = support::SES.require();
    let dump: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut all = Vec::new();
    strings(&dump, &mut all);
    let marker = format!("Idempotency-Key: key-{tag}");
    let raw = all
        .into_iter()
        .find(|s| s.contains(&marker))
        .unwrap_or_else(|| panic!("moto holds no raw message with {marker:?}"));
    check_mime(raw.as_bytes(), &tag);
}

#[tokio::test]
async fn an_unverified_sender_is_a_permanent_error() {
    let transport = transport().await;
    let email = corekit::email::Email::builder()
        .from("someone@not-verified.example.org")
        .to("ada@example.com")
        .subject("x")
        .text("x")
        .build()
        .unwrap();
    let e = Mailer::new(transport).send(email).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(e.backend(), Some("ses"));
}

#[tokio::test]
async fn ping_answers_and_a_dead_endpoint_is_unavailable() {
    Mailer::new(transport().await).ping().await.unwrap();
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let ses = SesTransport::new(client(&dead)).timeout(Duration::from_secs(5));
    let e = Mailer::new(ses).ping().await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
}

/// The conformance suite on SES against moto: the inbox finds the raw message by its
/// `Idempotency-Key` header in moto's state dump.
mod suite {
    use crate::conformance::Inbox;
    use crate::support;
    use corekit::email::Transport;
    use corekit::email::conformance::Delivered;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    async fn raw_message(endpoint: &str, key: &str) -> Vec<u8> {
        let marker = format!("Idempotency-Key: {key}");
        // The whole header line: `key-x-1` must not find `key-x-10`.
        let whole_line = |s: &str| {
            s.match_indices(&marker)
                .any(|(i, m)| matches!(s.as_bytes().get(i + m.len()), Some(b'\r' | b'\n')))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let dump: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut all = Vec::new();
            super::strings(&dump, &mut all);
            if let Some(raw) = all.into_iter().find(|s| whole_line(s)) {
                return raw.into_bytes();
            }
            assert!(
                Instant::now() < deadline,
                "moto holds no raw message with {marker:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn setup() -> (Arc<dyn Transport>, Inbox) {
        let endpoint = support::SES.require();
        let inbox: Inbox = Box::new(move |sent, _id| {
            let endpoint = endpoint.clone();
            Box::pin(async move {
                let key = sent.idempotency_key().expect("the suite sets a key");
                Delivered::Mime(raw_message(&endpoint, key).await)
            })
        });
        (Arc::new(super::transport().await), inbox)
    }

    crate::email_suite!();
}
