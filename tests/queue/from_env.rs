use corekit::ErrorKind;
use corekit::config::EnvConfig;
use corekit::queue::{Queue, QueueBackend, QueueConfig};

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_and_overrides() {
    let c = QueueConfig::from_vars("QUEUE_", vars(&[])).unwrap();
    assert_eq!(c.backend(), QueueBackend::Memory);
    assert_eq!(c.max_attempts, 5);
    let c = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[
            ("QUEUE_BACKEND", "kafka"),
            ("QUEUE_KAFKA_BROKERS", "a:9092, b:9092"),
            ("QUEUE_MAX_PAYLOAD", "256KiB"),
            ("QUEUE_RETRY_BACKOFF", "50ms"),
        ]),
    )
    .unwrap();
    assert_eq!(c.backend(), QueueBackend::Kafka);
    assert_eq!(c.kafka_brokers, ["a:9092", "b:9092"]);
    assert_eq!(c.max_payload, 256 * 1024);
    assert_eq!(c.retry_backoff, std::time::Duration::from_millis(50));
}

#[test]
fn the_url_scheme_picks_the_backend_and_its_address() {
    let load = |pairs: &[(&str, &str)]| QueueConfig::from_vars("QUEUE_", vars(pairs));
    let c = load(&[("QUEUE_URL", "kafka://a:9092,b:9093")]).unwrap();
    assert_eq!(c.backend(), QueueBackend::Kafka);
    assert_eq!(c.kafka_list(), ["a:9092", "b:9093"]);
    let c = load(&[("QUEUE_URL", "amqps://u:hunter2@mq:5671/v")]).unwrap();
    assert_eq!(c.backend(), QueueBackend::Rabbitmq);
    assert_eq!(c.amqp_address(), "amqps://u:hunter2@mq:5671/v");
    let c = load(&[("QUEUE_URL", "nats://n1:4222,nats://n2:4222")]).unwrap();
    assert_eq!(c.backend(), QueueBackend::Nats);
    assert_eq!(c.nats_address(), "nats://n1:4222,nats://n2:4222");
    assert_eq!(
        load(&[("QUEUE_URL", "memory://")]).unwrap().backend(),
        QueueBackend::Memory
    );
    for pairs in [
        vec![("QUEUE_URL", "nats://n:4222"), ("QUEUE_BACKEND", "kafka")],
        vec![("QUEUE_URL", "sqs://u:hunter2@queue")],
    ] {
        let e = load(&pairs).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("QUEUE_"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "secret leaked: {e}");
    }
}

#[tokio::test]
async fn from_config_validates() {
    let mut c = QueueConfig::default();
    c.max_attempts = 0;
    let e = Queue::from_config(&c)
        .await
        .expect_err("max_attempts 0 refused");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("QUEUE_MAX_ATTEMPTS"), "{e}");
}

#[test]
fn bad_values_name_the_variable_and_hide_secrets() {
    for (pairs, var) in [
        (vec![("QUEUE_BACKEND", "sqs")], "QUEUE_BACKEND"),
        (vec![("QUEUE_MAX_ATTEMPTS", "0")], "QUEUE_MAX_ATTEMPTS"),
        (vec![("QUEUE_NATS_MODE", "fast")], "QUEUE_NATS_MODE"),
        (vec![("QUEUE_ACK_WAIT", "soon")], "QUEUE_ACK_WAIT"),
        (vec![("QUEUE_DLQ_SUFFIX", " dead")], "QUEUE_DLQ_SUFFIX"),
    ] {
        let e = QueueConfig::from_vars("QUEUE_", vars(&pairs)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains(var), "{e}");
    }
    let e = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[
            ("QUEUE_BACKEND", "rabbitmq"),
            ("QUEUE_AMQP_URL", "http://user:hunter2@host"),
        ]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("QUEUE_AMQP_URL"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "secret leaked: {e}");
}

#[tokio::test]
async fn from_config_connects_each_backend() {
    let memory = Queue::from_config(&QueueConfig::default()).await.unwrap();
    assert_eq!(memory.backend_name(), "memory");
    let nats = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[
            ("QUEUE_BACKEND", "nats"),
            ("QUEUE_NATS_URL", &crate::support::NATS.require()),
        ]),
    )
    .unwrap();
    let q = Queue::from_config(&nats).await.unwrap();
    assert_eq!(q.backend_name(), "nats");
    q.ping().await.unwrap();
    let rabbit = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[
            ("QUEUE_BACKEND", "rabbitmq"),
            ("QUEUE_AMQP_URL", &crate::support::RABBITMQ.require()),
        ]),
    )
    .unwrap();
    Queue::from_config(&rabbit)
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
    let kafka = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[
            ("QUEUE_BACKEND", "kafka"),
            ("QUEUE_KAFKA_BROKERS", &crate::support::KAFKA.require()),
        ]),
    )
    .unwrap();
    Queue::from_config(&kafka)
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_broker_fails_within_the_connect_timeout() {
    let port = crate::support::free_port();
    for (backend, var, url) in [
        ("nats", "QUEUE_NATS_URL", format!("nats://127.0.0.1:{port}")),
        (
            "rabbitmq",
            "QUEUE_AMQP_URL",
            format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        ),
        ("kafka", "QUEUE_KAFKA_BROKERS", format!("127.0.0.1:{port}")),
    ] {
        let c = QueueConfig::from_vars(
            "QUEUE_",
            vars(&[
                ("QUEUE_BACKEND", backend),
                (var, &url),
                ("QUEUE_CONNECT_TIMEOUT", "2s"),
            ]),
        )
        .unwrap();
        let start = std::time::Instant::now();
        let e = Queue::from_config(&c).await.unwrap_err();
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{backend}: took {:?}",
            start.elapsed()
        );
        assert!(e.is_retryable(), "{backend}: {e}");
    }
}

/// Issue 14 #4: a URL that cannot be parsed is a configuration error, never retryable.
#[tokio::test]
async fn a_malformed_url_is_a_config_error() {
    for url in [
        "amqp://guest:guest@127.0.0.1:notaport/%2f",
        "nats://127.0.0.1:notaport",
        "amqp://guest:guest@[::1/%2f",
    ] {
        let c = QueueConfig::from_vars(
            "QUEUE_",
            vars(&[("QUEUE_URL", url), ("QUEUE_CONNECT_TIMEOUT", "2s")]),
        )
        .unwrap();
        let e = Queue::from_config(&c).await.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
        assert!(!e.is_retryable(), "{url}: {e}");
    }
}

/// Issue 14 #2: passwords with URL delimiters in them never reach an error's text.
#[tokio::test]
async fn connect_errors_never_show_the_password() {
    let port = crate::support::free_port();
    for password in [
        "s3cr/et", "s3cr#et", "s3cr?et", "s3cr@et", "s3cr:et", "s3cr%et",
    ] {
        for url in [
            format!("amqp://guest:{password}@127.0.0.1:{port}/%2f"),
            format!("nats://user:{password}@127.0.0.1:{port}"),
        ] {
            let c = QueueConfig::from_vars(
                "QUEUE_",
                vars(&[("QUEUE_URL", &url), ("QUEUE_CONNECT_TIMEOUT", "1s")]),
            );
            let e = match c {
                Ok(c) => Queue::from_config(&c).await.expect_err("nothing listens"),
                Err(e) => e,
            };
            for shown in [e.to_string(), format!("{e:?}")] {
                assert!(!shown.contains("s3cr"), "{password:?} leaked: {shown}");
            }
        }
    }
}

#[test]
fn the_ecosystem_variables_are_read_when_the_queue_ones_are_unset() {
    let c = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[
            ("RABBITMQ_URL", "amqp://r:5672"),
            ("NATS_URL", "nats://n:4222"),
            ("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092"),
        ]),
    )
    .unwrap();
    assert_eq!(c.amqp_address(), "amqp://r:5672");
    assert_eq!(c.nats_address(), "nats://n:4222");
    assert_eq!(c.kafka_list(), ["k1:9092", "k2:9092"]);
    let c = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[
            ("AMQP_URL", "amqp://a:5672"),
            ("RABBITMQ_URL", "amqp://r:5672"),
            ("QUEUE_NATS_URL", "nats://own:4222"),
            ("NATS_URL", "nats://n:4222"),
        ]),
    )
    .unwrap();
    assert_eq!(c.amqp_address(), "amqp://a:5672", "AMQP_URL comes first");
    assert_eq!(
        c.nats_address(),
        "nats://own:4222",
        "the queue's own variable wins"
    );
}

#[tokio::test]
async fn nats_url_reaches_the_server() {
    let c = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[
            ("QUEUE_BACKEND", "nats"),
            ("NATS_URL", &crate::support::NATS.require()),
        ]),
    )
    .unwrap();
    Queue::from_config(&c).await.unwrap().ping().await.unwrap();
}

#[test]
fn from_env_with_no_variables_warns_that_messages_stay_in_process() {
    crate::support::assert_unset("QUEUE_");
    let (queue, logs) = crate::support::with_logs(Queue::from_env());
    assert_eq!(queue.unwrap().backend_name(), "memory");
    assert!(
        logs.contains("WARN") && logs.contains("no QUEUE_* variable is set"),
        "{logs}"
    );
    assert!(logs.contains("QUEUE_URL="), "{logs}");
}

#[test]
fn retention_and_replicas_reach_the_topic_options_of_each_broker() {
    let c = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[
            ("QUEUE_RETENTION", "7d"),
            ("QUEUE_RETENTION_BYTES", "10GiB"),
            ("QUEUE_RETENTION_MESSAGES", "1000000"),
            ("QUEUE_NATS_REPLICAS", "3"),
            ("QUEUE_KAFKA_REPLICATION", "2"),
        ]),
    )
    .unwrap();
    let nats = c.topic_options(QueueBackend::Nats);
    assert_eq!(nats.replication, 3);
    assert_eq!(
        nats.retention,
        Some(std::time::Duration::from_secs(7 * 86400))
    );
    assert_eq!(nats.retention_bytes, Some(10 << 30));
    assert_eq!(nats.retention_messages, Some(1_000_000));
    assert_eq!(c.topic_options(QueueBackend::Kafka).replication, 2);
}

#[test]
fn the_rabbitmq_queue_type_is_read_and_checked() {
    use corekit::queue::QueueType;
    let c = QueueConfig::from_vars("QUEUE_", vars(&[])).unwrap();
    assert_eq!(
        c.topic_options(QueueBackend::Rabbitmq).queue_type,
        QueueType::Classic
    );
    let c =
        QueueConfig::from_vars("QUEUE_", vars(&[("QUEUE_RABBITMQ_QUEUE_TYPE", "quorum")])).unwrap();
    assert_eq!(
        c.topic_options(QueueBackend::Rabbitmq).queue_type,
        QueueType::Quorum
    );
    let e = QueueConfig::from_vars("QUEUE_", vars(&[("QUEUE_RABBITMQ_QUEUE_TYPE", "stream")]))
        .expect_err("not a type corekit offers");
    assert_eq!(e.kind(), corekit::ErrorKind::Config);
    assert!(e.to_string().contains("QUEUE_RABBITMQ_QUEUE_TYPE"), "{e}");
}

#[tokio::test]
async fn a_connect_error_names_the_address_and_its_variable() {
    let dead = format!("nats://u:s3cret@127.0.0.1:{}", crate::support::free_port());
    let c = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[
            ("QUEUE_BACKEND", "nats"),
            ("NATS_URL", &dead),
            ("QUEUE_CONNECT_TIMEOUT", "2s"),
        ]),
    )
    .unwrap();
    let e = Queue::from_config(&c)
        .await
        .expect_err("nothing listens there");
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("127.0.0.1") && text.contains("from NATS_URL"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    // Not set by a variable (changed in code here), the error says which variable to set.
    let mut c = QueueConfig::from_vars(
        "QUEUE_",
        vars(&[("QUEUE_BACKEND", "nats"), ("QUEUE_CONNECT_TIMEOUT", "2s")]),
    )
    .unwrap();
    c.nats_url = corekit::config::Secret::new(dead.clone());
    let e = Queue::from_config(&c)
        .await
        .expect_err("nothing listens there");
    assert!(e.to_string().contains("set QUEUE_NATS_URL"), "{e}");
}

/// `QUEUE_DEDUPE_*`: every consumer of the queue skips ids it handled; a bad URL is a `Config`
/// error naming the variable, an unreachable Redis names its address; no password shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_from_variables() {
    use corekit::queue::Message;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    let load = |pairs: &[(&str, &str)]| QueueConfig::from_vars("QUEUE_", vars(pairs));
    let e = load(&[("QUEUE_DEDUPE_URL", "postgres://u:hunter2@db/x")]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("QUEUE_DEDUPE_URL"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "secret leaked: {e}");
    let c = load(&[
        ("QUEUE_DEDUPE_URL", "redis://:hunter2@127.0.0.1:1"),
        ("QUEUE_CONNECT_TIMEOUT", "1s"),
    ])
    .unwrap();
    let e = Queue::from_config(&c).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "secret leaked: {e}");

    let c = load(&[
        ("QUEUE_DEDUPE_URL", "memory://"),
        ("QUEUE_DEDUPE_WINDOW", "1h"),
        ("QUEUE_CONCURRENCY", "1"),
    ])
    .unwrap();
    assert_eq!(c.dedupe_window, Duration::from_secs(3600));
    let queue = Queue::from_config(&c).await.unwrap();
    queue.ensure_group("dedupe_env", "g").await.unwrap();
    let twice = Message::new("once").with_id("order-7");
    queue.publish("dedupe_env", twice.clone()).await.unwrap();
    queue.publish("dedupe_env", twice).await.unwrap();
    queue
        .publish("dedupe_env", Message::new("end"))
        .await
        .unwrap();
    let ran: Arc<Mutex<Vec<String>>> = Arc::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stop = Arc::new(Mutex::new(Some(stop)));
    let seen = ran.clone();
    let report = queue
        .consumer("dedupe_env", "g")
        .run(
            move |m: Message| {
                let (seen, stop) = (seen.clone(), stop.clone());
                async move {
                    let body = m.text().unwrap().to_owned();
                    seen.lock().unwrap().push(body.clone());
                    // One lane, in order: the duplicate came before this.
                    if body == "end"
                        && let Some(stop) = stop.lock().unwrap().take()
                    {
                        let _ = stop.send(());
                    }
                    Ok::<(), corekit::Error>(())
                }
            },
            async {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
    assert_eq!(*ran.lock().unwrap(), ["once", "end"]);
    assert_eq!(report.duplicates, 1, "{report:?}");
}
