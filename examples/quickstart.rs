//! corekit in one file, on embedded defaults: no server needed.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use corekit::cache::{Cache, MemoryStore};
use corekit::config::{self, EnvConfig};
use corekit::email::{Email, Mailer, MemoryTransport};
use corekit::queue::{MemoryBroker, Message, Queue};
use corekit::storage::{LocalStorage, ObjectPath, PutOptions, Storage};
use serde::Deserialize;
use std::time::Duration;

/// The example's own settings, loaded the way every corekit module loads its own.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct AppConfig {
    #[serde(with = "config::duration")]
    request_timeout: Duration,
    greeting: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            greeting: "hello from corekit".into(),
        }
    }
}

impl EnvConfig for AppConfig {
    const PREFIX: &'static str = "QUICKSTART_";
}

fn app_greeting() -> &'static str {
    "hello"
}

#[tokio::main]
async fn main() -> corekit::Result<()> {
    // 0. Observability (with `--features observability`): OpenTelemetry from the OTEL_*
    //    variables; unless they say otherwise, spans print to the console and metrics are off.
    #[cfg(feature = "observability")]
    let _telemetry = {
        use corekit::observability::{LogFormat, ObservabilityConfig, Telemetry};
        let mut config = ObservabilityConfig::from_env()?;
        if std::env::var_os("OTEL_TRACES_EXPORTER").is_none() {
            config.traces_exporter = "console".into();
        }
        if std::env::var_os("OTEL_METRICS_EXPORTER").is_none() {
            config.metrics_exporter = "none".into();
        }
        Telemetry::builder_from(config)
            .log_format(LogFormat::Compact)
            .init()?
    };
    // 1. Configuration: QUICKSTART_REQUEST_TIMEOUT=2s overrides the default.
    let app = AppConfig::from_env()?;
    println!("config: {app:?}");
    // A bad value is caught at startup and names the variable.
    let bad = AppConfig::from_vars(
        "QUICKSTART_",
        [("QUICKSTART_REQUEST_TIMEOUT".to_string(), "ten".to_string())],
    );
    if let Err(err) = bad {
        println!("rejected: {err}");
    }

    // 2. Cache: the in-process store (swap in Redis with CACHE_BACKEND=redis and Cache::from_env).
    let cache = Cache::builder(MemoryStore::new(10_000))
        .prefix("quickstart")
        .default_ttl(Some(Duration::from_secs(60)))
        .build()?;
    let greeting: String = cache
        .get_or_set("greeting", None, || async {
            Ok::<_, std::io::Error>(app.greeting.clone())
        })
        .await?;
    println!("cache: {greeting} (hits so far: {})", cache.stats().hits);
    let again: Option<String> = cache.get("greeting").await?;
    println!("cache: second read {again:?}, stats {:?}", cache.stats());

    // 3. Queue: the in-process broker (swap in Kafka, RabbitMQ or NATS with QUEUE_BACKEND and
    //    Queue::from_env). A consumer handles each message, retrying failures with backoff.
    let queue = Queue::new(MemoryBroker::new());
    queue.ensure_group("greetings", "printer").await?;
    for name in ["Ada", "Grace", "Barbara"] {
        queue
            .publish("greetings", Message::json(&name)?.with_key(name))
            .await?;
    }
    let printed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = printed.clone();
    let report = queue
        .consumer("greetings", "printer")
        .run(
            move |message: Message| {
                let count = count.clone();
                async move {
                    let name: String = message.decode()?;
                    println!("queue: {}, {name}", app_greeting());
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok::<(), corekit::Error>(())
                }
            },
            async move {
                while printed.load(std::sync::atomic::Ordering::Relaxed) < 3 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        )
        .await?;
    println!("queue: consumer stopped after {} messages", report.acked);

    // 4. Email: the in-memory outbox (swap in SMTP, SendGrid or SES with EMAIL_BACKEND and
    //    Mailer::from_env). Addresses are checked when the email is built.
    let outbox = MemoryTransport::new();
    let mailer = Mailer::builder(outbox.clone())
        .default_from("Quickstart <hello@example.com>")?
        .build();
    let email = Email::builder()
        .to("Ada <ada@example.com>")
        .subject("Welcome")
        .text(format!("{}, Ada", app_greeting()))
        .build()?;
    let sent = {
        let _span = tracing::info_span!("send_welcome").entered();
        #[cfg(feature = "observability")]
        println!(
            "observability: trace id {:?}",
            corekit::observability::current_trace_id()
        );
        mailer.send(email).await?
    };
    println!(
        "email: sent via {} to {} (outbox holds {})",
        sent.transport,
        outbox.sent()[0].to()[0],
        outbox.sent().len()
    );

    // 5. Storage: a local directory (a temp dir here). Keys are validated; writes are atomic.
    let root = std::env::temp_dir().join(format!("corekit-quickstart-{}", std::process::id()));
    let storage = Storage::new(LocalStorage::new(&root)?);
    let key = ObjectPath::new("greetings/ada.txt")?;
    storage
        .put(
            &key,
            greeting.clone().into(),
            &PutOptions::default().content_type("text/plain"),
        )
        .await?;
    let object = storage.get(&key).await?;
    println!(
        "storage: {} holds {:?} ({:?})",
        key,
        String::from_utf8_lossy(&object.bytes),
        object.meta.content_type
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
