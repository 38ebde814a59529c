//! The transports that need no server (memory outbox, `.eml` files), templates, the mailer's
//! retry policy, and `EMAIL_*` configuration.

use crate::mime::check_mime;
use corekit::ErrorKind;
use corekit::config::EnvConfig;
use corekit::email::conformance::full_email;
use corekit::email::{
    Email, EmailBackend, EmailConfig, FileTransport, Mailer, MemoryTransport, Retry, Templates,
};
use std::time::Duration;

#[tokio::test]
async fn the_outbox_keeps_what_was_sent() {
    let outbox = MemoryTransport::new();
    let mailer = Mailer::builder(outbox.clone())
        .default_from("Default <noreply@example.com>")
        .unwrap()
        .build();
    let email = Email::builder()
        .to("ada@example.com")
        .subject("Hi")
        .text("Hello")
        .build()
        .unwrap();
    mailer.send(email).await.unwrap();
    mailer.send(full_email("outbox")).await.unwrap();
    let sent = outbox.take();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].from_address().unwrap().email(),
        "noreply@example.com",
        "default sender"
    );
    assert_eq!(
        sent[1].from_address().unwrap().email(),
        "sender@example.com",
        "own sender kept"
    );
    assert!(
        sent[0].idempotency_key().is_some(),
        "a key is generated when none is given"
    );
    assert_eq!(
        sent[1],
        full_email("outbox"),
        "what went out is exactly what was built"
    );
    assert!(outbox.sent().is_empty());
}

#[tokio::test]
async fn no_sender_anywhere_is_invalid_input() {
    let mailer = Mailer::new(MemoryTransport::new());
    let email = Email::builder()
        .to("a@example.com")
        .text("x")
        .build()
        .unwrap();
    let e = mailer.send(email).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn transient_failures_are_retried_permanent_ones_are_not() {
    let outbox = MemoryTransport::new();
    let mailer = Mailer::builder(outbox.clone())
        .retry(Retry::new(3, Duration::from_millis(5)))
        .build();
    outbox.fail_next(2, true);
    let sent = mailer.send(full_email("transient")).await.unwrap();
    assert_eq!(sent.attempts, 3);
    outbox.fail_next(1, false);
    let before = outbox.calls();
    let e = mailer.send(full_email("permanent")).await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(
        outbox.calls() - before,
        1,
        "a permanent failure is tried once"
    );
    outbox.fail_next(3, true);
    let e = mailer.send(full_email("exhausted")).await.unwrap_err();
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_permanent_failure_does_not_fail_over() {
    let (first, second) = (MemoryTransport::new(), MemoryTransport::new());
    first.fail_next(1, false);
    let mailer = Mailer::builder(first.clone())
        .fallback(second.clone())
        .build();
    mailer.send(full_email("nofailover")).await.unwrap_err();
    assert!(
        second.sent().is_empty(),
        "a rejected email would be rejected again"
    );
}

#[tokio::test]
async fn the_file_transport_writes_a_complete_eml() {
    let dir = std::env::temp_dir().join(crate::support::unique("eml"));
    let mailer = Mailer::new(FileTransport::new(&dir));
    let sent = mailer.send(full_email("file")).await.unwrap();
    let path = sent.message_id.unwrap();
    assert!(path.ends_with(".eml"), "{path}");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1, "no temporary file left behind");
    check_mime(&std::fs::read(&path).unwrap(), "file");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 14 #7: a bare CR never reaches the wire, and a subject that looks like an RFC 2047
/// encoded word reads as written (it is encoded, not sent raw for readers to decode).
#[tokio::test]
async fn bare_cr_is_normalized_and_encoded_word_subjects_read_as_written() {
    let dir = std::env::temp_dir().join(crate::support::unique("eml"));
    let mailer = Mailer::new(FileTransport::new(&dir));
    let subject = "=?utf-8?B?SGFja2Vk?= and a long tail to fold over several encoded words, ok";
    let email = Email::builder()
        .from("app@example.com")
        .to("ada@example.com")
        .subject(subject)
        .text("four\r.\rMAIL FROM:<x@y>\r\nfive\n")
        .build()
        .unwrap();
    let path = mailer.send(email).await.unwrap().message_id.unwrap();
    let raw = std::fs::read(&path).unwrap();
    for (i, b) in raw.iter().enumerate() {
        if *b == b'\r' {
            assert_eq!(raw.get(i + 1), Some(&b'\n'), "bare CR at byte {i}");
        }
    }
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(parsed.subject(), Some(subject));
    let text = parsed.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(text.contains("four\n.\nMAIL FROM:<x@y>\nfive"), "{text:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn templates() -> Templates {
    Templates::from_strings([
        (
            "layout.html",
            "<html><body>{% block content %}{% endblock %}<footer>Acme</footer></body></html>",
        ),
        ("welcome.subject", "Welcome, {{ name }}!\n"),
        (
            "welcome.html",
            "{% extends \"layout.html\" %}{% block content %}<p>Hi {{ name }}</p>{% endblock %}",
        ),
        ("welcome.txt", "Hi {{ name }}"),
        ("bare.subject", "No body"),
    ])
    .unwrap()
}

#[tokio::test]
async fn templates_render_subject_html_and_text_with_escaping() {
    let t = templates();
    let r = t
        .render("welcome", &serde_json::json!({"name": "<Ada & Co>"}))
        .unwrap();
    assert_eq!(r.subject, "Welcome, <Ada & Co>!", "subject is not HTML");
    assert_eq!(
        r.html.as_deref(),
        Some("<html><body><p>Hi &lt;Ada &amp; Co&gt;</p><footer>Acme</footer></body></html>"),
        "layout applied, HTML escaped"
    );
    assert_eq!(
        r.text.as_deref(),
        Some("Hi <Ada & Co>"),
        "text is not escaped"
    );

    let outbox = MemoryTransport::new();
    let mailer = Mailer::builder(outbox.clone())
        .default_from("app@example.com")
        .unwrap()
        .templates(t)
        .build();
    mailer
        .send_template(
            "welcome",
            &serde_json::json!({"name": "Ada"}),
            Email::builder().to("ada@example.com"),
        )
        .await
        .unwrap();
    assert_eq!(outbox.last().unwrap().subject(), "Welcome, Ada!");
}

#[tokio::test]
async fn a_missing_variable_names_the_template_and_the_variable() {
    let e = templates()
        .render("welcome", &serde_json::json!({}))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let text = e.to_string();
    assert!(text.contains("welcome"), "{text}");
    assert!(text.contains("name"), "{text}");
    let e = templates()
        .render("bare", &serde_json::json!({}))
        .unwrap_err();
    assert!(e.to_string().contains("neither"), "{e}");
    let e = templates()
        .render("nope", &serde_json::json!({}))
        .unwrap_err();
    assert!(e.to_string().contains("nope.subject"), "{e}");
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn configuration_from_variables() {
    let c = EmailConfig::from_vars(
        "EMAIL_",
        vars(&[
            ("EMAIL_BACKEND", "memory"),
            ("EMAIL_FROM", "App <app@example.com>"),
        ]),
    )
    .unwrap();
    let mailer = Mailer::from_config(&c).await.unwrap();
    assert_eq!(mailer.backend_name(), "memory");
    assert!(mailer.downcast_ref::<MemoryTransport>().is_some());
    mailer.ping().await.unwrap();
    // The old name is still read.
    let c = EmailConfig::from_vars("EMAIL_", vars(&[("EMAIL_PROVIDER", "file")])).unwrap();
    assert_eq!(c.backend(), EmailBackend::File);
    for (pairs, var) in [
        (vec![("EMAIL_BACKEND", "pigeon")], "EMAIL_BACKEND"),
        (vec![("EMAIL_PROVIDER", "pigeon")], "EMAIL_PROVIDER"),
        (vec![("EMAIL_FROM", "not an address")], "EMAIL_FROM"),
        (
            vec![("EMAIL_BACKEND", "smtp"), ("EMAIL_SMTP_URL", "http://x")],
            "EMAIL_SMTP_URL",
        ),
        (
            vec![("EMAIL_BACKEND", "sendgrid")],
            "EMAIL_SENDGRID_API_KEY",
        ),
        (vec![("EMAIL_TIMEOUT", "soon")], "EMAIL_TIMEOUT"),
        (vec![("EMAIL_URL", "pigeon://coop")], "EMAIL_URL"),
        (
            vec![("EMAIL_URL", "smtp://h:25"), ("EMAIL_BACKEND", "ses")],
            "EMAIL_BACKEND",
        ),
    ] {
        let e = EmailConfig::from_vars("EMAIL_", vars(&pairs)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains(var), "{e}");
    }
    for pairs in [
        vec![
            ("EMAIL_BACKEND", "smtp"),
            ("EMAIL_SMTP_URL", "ftp://u:hunter2@h"),
        ],
        vec![("EMAIL_URL", "ftp://u:hunter2@h")],
    ] {
        let e = EmailConfig::from_vars("EMAIL_", vars(&pairs)).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "secret leaked: {e}");
    }
    // Validation runs on a config built in code too.
    let mut c = EmailConfig::default();
    c.max_attempts = 0;
    let e = Mailer::from_config(&c)
        .await
        .expect_err("max_attempts 0 refused");
    assert!(e.to_string().contains("EMAIL_MAX_ATTEMPTS"), "{e}");
    // A mailer with no default sender is refused at start-up, not at its first send.
    let e = Mailer::from_config(&EmailConfig::default())
        .await
        .expect_err("no EMAIL_FROM");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("EMAIL_FROM"), "{e}");
    // EMAIL_URL alone picks SMTP and is its address.
    let c = EmailConfig::from_vars(
        "EMAIL_",
        vars(&[
            (
                "EMAIL_URL",
                &format!("{}?tls=none", crate::support::SMTP.require()),
            ),
            ("EMAIL_FROM", "app@example.com"),
        ]),
    )
    .unwrap();
    assert_eq!(c.backend(), EmailBackend::Smtp);
    let mailer = Mailer::from_config(&c).await.unwrap();
    assert_eq!(mailer.backend_name(), "smtp");
    mailer.ping().await.unwrap();
    mailer.close().await.unwrap();
}

#[tokio::test]
async fn a_file_url_picks_the_file_transport() {
    let dir = std::env::temp_dir().join(crate::support::unique("outbox"));
    let url = format!("file://{}", dir.join("out").display());
    let c = EmailConfig::from_vars(
        "EMAIL_",
        vars(&[("EMAIL_URL", &url), ("EMAIL_FROM", "app@example.com")]),
    )
    .unwrap();
    let mailer = Mailer::from_config(&c).await.unwrap();
    assert_eq!(mailer.backend_name(), "file");
    mailer.ping().await.unwrap();
    assert!(dir.join("out").is_dir(), "ping creates the directory");
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn queued_round_trip(queue: corekit::queue::Queue) {
    use corekit::email::EmailQueue;
    let topic = crate::support::unique("emails").replace('-', "_");
    let emails = EmailQueue::new(queue.clone(), topic.clone());
    let outbox = MemoryTransport::new();
    let mailer = Mailer::builder(outbox.clone())
        .default_from("app@example.com")
        .unwrap()
        .retry(Retry::new(1, Duration::from_millis(1)))
        .build();
    // Provision the group first (RabbitMQ-style brokers route only to existing groups).
    queue.ensure_group(&topic, "senders").await.unwrap();
    queue.ensure_dead_letter(&topic).await.unwrap();
    emails.enqueue(full_email("queued")).await.unwrap();
    // Same first recipient, so the same key: the worker sends them in order.
    let plain = Email::builder()
        .to("ada@example.com")
        .text("second")
        .build()
        .unwrap();
    emails.enqueue(plain).await.unwrap();
    outbox.fail_next(1, false); // the first send is rejected for good: dead-lettered
    let watch = outbox.clone();
    let report = emails
        .work(mailer, "senders", async move {
            while watch.calls() < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
    assert_eq!((report.acked, report.dead_lettered), (1, 1), "{report:?}");
    let sent = outbox.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text(), Some("second"));
    // The rejected one is in the dead-letter topic, intact.
    use futures_util::StreamExt;
    let mut dead = queue
        .subscribe(
            &queue.dead_letter_topic(&topic),
            corekit::queue::DEAD_LETTER_GROUP,
        )
        .await
        .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(30), dead.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(d.message().text().unwrap().contains("key-queued"));
    d.ack().await.unwrap();
}

#[tokio::test]
async fn emails_through_the_in_memory_queue() {
    queued_round_trip(corekit::queue::Queue::new(
        corekit::queue::MemoryBroker::new(),
    ))
    .await;
}

#[tokio::test]
async fn emails_through_nats_jetstream() {
    let broker = corekit::queue::NatsBroker::builder(crate::support::NATS.require())
        .build()
        .await
        .unwrap();
    queued_round_trip(corekit::queue::Queue::new(broker)).await;
}

/// The conformance suite on the in-memory outbox: the inbox finds the email by its key.
mod memory_suite {
    use crate::conformance::Inbox;
    use corekit::email::conformance::Delivered;
    use corekit::email::{MemoryTransport, Transport};
    use std::sync::Arc;

    async fn setup() -> (Arc<dyn Transport>, Inbox) {
        let outbox = MemoryTransport::new();
        let kept = outbox.clone();
        let inbox: Inbox = Box::new(move |sent, _id| {
            let kept = kept.clone();
            Box::pin(async move {
                let found = kept
                    .sent()
                    .into_iter()
                    .find(|e| e.idempotency_key() == sent.idempotency_key());
                Delivered::Email(found.expect("the outbox has the email"))
            })
        });
        (Arc::new(outbox), inbox)
    }

    crate::email_suite!();

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_all_on_one_outbox() {
        let (transport, inbox) = setup().await;
        corekit::email::conformance::run_all(transport, &*inbox).await;
    }
}

/// The conformance suite on the `.eml` file transport: the inbox reads the file `send` named.
mod file_suite {
    use crate::conformance::Inbox;
    use corekit::email::conformance::Delivered;
    use corekit::email::{FileTransport, Transport};
    use std::sync::Arc;

    async fn setup() -> (Arc<dyn Transport>, Inbox) {
        let dir = std::env::temp_dir().join(crate::support::unique("eml-suite"));
        let inbox: Inbox = Box::new(|_sent, id| {
            Box::pin(async move {
                let path = id.expect("the file transport answers the file's path");
                Delivered::Mime(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
            })
        });
        (Arc::new(FileTransport::new(dir)), inbox)
    }

    crate::email_suite!();

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_all_in_one_directory() {
        let (transport, inbox) = setup().await;
        corekit::email::conformance::run_all(transport, &*inbox).await;
    }
}

#[test]
fn from_env_with_no_variables_warns_and_refuses_a_mailer_without_sender() {
    crate::support::assert_unset("EMAIL_");
    let (mailer, logs) = crate::support::with_logs(Mailer::from_env());
    let e = mailer.expect_err("no EMAIL_FROM");
    assert!(e.to_string().contains("EMAIL_FROM"), "{e}");
    assert!(
        logs.contains("WARN") && logs.contains("no EMAIL_* variable is set"),
        "{logs}"
    );
    assert!(logs.contains("never sent"), "{logs}");
}

#[tokio::test]
async fn the_memory_outbox_is_reachable_from_a_configured_mailer() {
    let c = EmailConfig::from_vars("EMAIL_", vars(&[("EMAIL_FROM", "app@example.com")])).unwrap();
    let mailer = Mailer::from_config(&c).await.unwrap();
    let email = corekit::email::Email::builder()
        .to("ada@example.com")
        .subject("hi")
        .text("hello")
        .build()
        .unwrap();
    mailer.send(email).await.unwrap();
    assert_eq!(mailer.outbox().expect("memory by default").sent().len(), 1);
}

#[test]
fn smtp_url_and_sendgrid_api_key_are_read_when_the_email_ones_are_unset() {
    let c = EmailConfig::from_vars(
        "EMAIL_",
        vars(&[
            ("EMAIL_BACKEND", "smtp"),
            ("SMTP_URL", "smtps://relay:465"),
            ("SENDGRID_API_KEY", "SG.key"),
        ]),
    )
    .unwrap();
    assert_eq!(c.smtp_address(), "smtps://relay:465");
    assert_eq!(c.sendgrid_api_key.expose(), "SG.key");
}

/// Issue 15: a mailer that cannot reach its server says which server and which variable named
/// it, and never prints the password.
#[tokio::test]
async fn an_unreachable_server_is_named_with_its_variable() {
    let port = crate::support::free_port();
    let url = format!("smtp://user:hunter2@127.0.0.1:{port}");
    let c = EmailConfig::from_vars(
        "EMAIL_",
        vars(&[
            ("SMTP_URL", &url),
            ("EMAIL_BACKEND", "smtp"),
            ("EMAIL_FROM", "app@example.com"),
            ("EMAIL_TIMEOUT", "2s"),
            ("EMAIL_MAX_ATTEMPTS", "1"),
        ]),
    )
    .unwrap();
    let mailer = Mailer::from_config(&c).await.unwrap();
    let e = mailer.ping().await.expect_err("nothing listens there");
    let text = format!("{e} {e:?}");
    eprintln!("{e}");
    assert!(e.is_retryable(), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("from SMTP_URL"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
