//! corekit's SMTP transport next to raw lettre, same server (maildev), same run; and template
//! rendering next to raw Tera.
//!
//! ```sh
//! scripts/services.sh up smtp
//! cargo bench --bench email --features email-smtp,email-templates
//! ```
//!
//! - `smtp/lettre_sequential`: lettre's `AsyncSmtpTransport` (pooled), one send at a time — what
//!   a handler awaiting `send` gets.
//! - `smtp/corekit_sequential`: corekit's `Mailer` over `SmtpTransport`, one send at a time.
//! - `smtp/corekit_default`: corekit with its defaults (pool of 8), 1000 sends issued at once:
//!   what a service sending a burst gets.
//! - `templates/*`: one template (layout, subject, HTML, text) rendered by corekit and by Tera.

use corekit::email::{Email, Mailer, SmtpTransport, Templates};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lettre::AsyncTransport as _;
use std::time::{Duration, Instant};

const BURST: usize = 1000;
const SEQUENTIAL: usize = 100;

fn smtp_host_port() -> (String, u16) {
    let url =
        std::env::var("COREKIT_TEST_SMTP_URL").unwrap_or_else(|_| "smtp://127.0.0.1:1025".into());
    let hostport = url.trim_start_matches("smtp://");
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "25"));
    (host.to_owned(), port.parse().unwrap_or(25))
}

fn maildev_api() -> String {
    std::env::var("COREKIT_TEST_MAILDEV_API").unwrap_or_else(|_| "http://127.0.0.1:1080".into())
}

async fn clear_maildev() {
    let _ = reqwest::Client::new()
        .delete(format!("{}/api/email/all", maildev_api()))
        .send()
        .await;
}

fn email(i: usize) -> Email {
    Email::builder()
        .from("bench@example.com")
        .to("rcpt@example.com")
        .subject(format!("bench {i}"))
        .text("A small transactional message.")
        .build()
        .unwrap()
}

fn lettre_message(i: usize) -> lettre::Message {
    lettre::Message::builder()
        .from("bench@example.com".parse().unwrap())
        .to("rcpt@example.com".parse().unwrap())
        .subject(format!("bench {i}"))
        .body("A small transactional message.".to_owned())
        .unwrap()
}

fn smtp(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let (host, port) = smtp_host_port();
    let mut g = c.benchmark_group("email/smtp");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));

    let raw = rt.block_on(async {
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(host.as_str())
            .port(port)
            .build()
    });
    g.throughput(Throughput::Elements(SEQUENTIAL as u64));
    g.bench_function("lettre_sequential", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    clear_maildev().await;
                    let start = Instant::now();
                    for i in 0..SEQUENTIAL {
                        raw.send(lettre_message(i)).await.unwrap();
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });

    let mailer = Mailer::new(
        SmtpTransport::from_url(&format!("smtp://{host}:{port}?tls=none"))
            .unwrap()
            .build()
            .unwrap(),
    );
    g.bench_function("corekit_sequential", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    clear_maildev().await;
                    let start = Instant::now();
                    for i in 0..SEQUENTIAL {
                        mailer.send(email(i)).await.unwrap();
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });

    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("corekit_default", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    clear_maildev().await;
                    let start = Instant::now();
                    let sends = (0..BURST).map(|i| mailer.send(email(i)));
                    for r in futures_util::future::join_all(sends).await {
                        r.unwrap();
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    g.finish();
    rt.block_on(clear_maildev());
}

const LAYOUT: &str =
    "<html><body>{% block content %}{% endblock %}<footer>{{ company }}</footer></body></html>";
const HTML: &str = "{% extends \"layout.html\" %}{% block content %}<h1>Hi {{ name }}</h1>{% for item in items %}<p>{{ item.name }}: {{ item.qty }}</p>{% endfor %}{% endblock %}";
const TEXT: &str =
    "Hi {{ name }}\n{% for item in items %}{{ item.name }}: {{ item.qty }}\n{% endfor %}";
const SUBJECT: &str = "Your order, {{ name }}";

fn templates(c: &mut Criterion) {
    let context = serde_json::json!({
        "name": "Ada <Lovelace>",
        "company": "Acme & Co",
        "items": (0..10).map(|i| serde_json::json!({"name": format!("item {i}"), "qty": i})).collect::<Vec<_>>(),
    });
    let corekit = Templates::from_strings([
        ("layout.html", LAYOUT),
        ("order.html", HTML),
        ("order.txt", TEXT),
        ("order.subject", SUBJECT),
    ])
    .unwrap();
    let mut tera = tera::Tera::default();
    tera.add_raw_templates([
        ("layout.html", LAYOUT),
        ("order.html", HTML),
        ("order.txt", TEXT),
        ("order.subject", SUBJECT),
    ])
    .unwrap();
    let mut g = c.benchmark_group("email/templates");
    g.bench_function("corekit_render", |b| {
        b.iter(|| corekit.render("order", &context).unwrap())
    });
    g.bench_function("tera_render", |b| {
        b.iter(|| {
            let ctx = tera::Context::from_serialize(&context).unwrap();
            (
                tera.render("order.subject", &ctx).unwrap(),
                tera.render("order.html", &ctx).unwrap(),
                tera.render("order.txt", &ctx).unwrap(),
            )
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    templates(c);
    smtp(c, &rt);
}

criterion_group!(email_benches, benches);
criterion_main!(email_benches);
