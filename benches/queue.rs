//! corekit's queue next to the raw clients, same broker, same run.
//!
//! ```sh
//! scripts/services.sh up kafka rabbitmq nats
//! cargo bench --bench queue --features queue-kafka,queue-rabbitmq,queue-nats
//! ```
//!
//! Per broker, 1 KiB messages:
//! - `publish/one`: one acknowledged publish at a time (Kafka `acks=all` idempotent producer,
//!   RabbitMQ publisher confirm, JetStream publish ack) — corekit `Queue::publish` vs the raw
//!   client doing the same.
//! - `publish/batch`: 1000 messages with the acknowledgements pipelined — corekit
//!   `Queue::publish_batch` vs the raw client.
//! - `end_to_end`: 2000 messages published as a batch and consumed and acknowledged by one
//!   subscription (corekit only; the figure is messages per second).

use bytes::Bytes;
use corekit::queue::{KafkaBroker, Message, NatsBroker, Queue, RabbitMqBroker};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use std::time::{Duration, Instant};

const PAYLOAD: usize = 1024;
const BATCH: usize = 1000;
const E2E: usize = 2000;

fn env(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn unique(name: &str) -> String {
    format!(
        "bench_{name}_{}_{:x}",
        std::process::id(),
        fastrand::u32(..)
    )
}

fn payload() -> Bytes {
    Bytes::from(vec![b'x'; PAYLOAD])
}

fn batch() -> Vec<Message> {
    (0..BATCH).map(|_| Message::new(payload())).collect()
}

/// A raw client's publish of one message, awaited to the broker's acknowledgement.
trait Raw: Send + Sync + 'static {
    fn publish(&self, id: String) -> futures_util::future::BoxFuture<'_, ()>;
    fn publish_many(&self, ids: Vec<String>) -> futures_util::future::BoxFuture<'_, ()>;
}

struct RawKafka {
    producer: rdkafka::producer::FutureProducer,
    topic: String,
    payload: Bytes,
}

impl RawKafka {
    async fn send(&self, id: String) {
        use rdkafka::message::{Header, OwnedHeaders};
        let headers = OwnedHeaders::new().insert(Header {
            key: "id",
            value: Some(id.as_bytes()),
        });
        let record = rdkafka::producer::FutureRecord::<str, [u8]>::to(&self.topic)
            .payload(&self.payload[..])
            .headers(headers);
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("raw kafka send");
    }
}

impl Raw for RawKafka {
    fn publish(&self, id: String) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(self.send(id))
    }
    fn publish_many(&self, ids: Vec<String>) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            futures_util::future::join_all(ids.into_iter().map(|id| self.send(id))).await;
        })
    }
}

struct RawRabbit {
    _connection: lapin::Connection,
    channel: lapin::Channel,
    exchange: String,
    payload: Bytes,
}

impl RawRabbit {
    async fn send(&self, id: String) {
        use lapin::types::{AMQPValue, FieldTable};
        let mut headers = FieldTable::default();
        headers.insert("id".into(), AMQPValue::LongString(id.as_str().into()));
        let props = lapin::BasicProperties::default()
            .with_message_id(id.into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                "".into(),
                lapin::options::BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &self.payload,
                props,
            )
            .await
            .expect("raw rabbitmq publish")
            .await
            .expect("raw rabbitmq confirm");
        assert!(matches!(confirm, lapin::Confirmation::Ack(None)));
    }
}

impl Raw for RawRabbit {
    fn publish(&self, id: String) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(self.send(id))
    }
    fn publish_many(&self, ids: Vec<String>) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            futures_util::future::join_all(ids.into_iter().map(|id| self.send(id))).await;
        })
    }
}

struct RawNats {
    js: async_nats::jetstream::Context,
    subject: String,
    payload: Bytes,
}

impl RawNats {
    async fn enqueue(&self, id: String) -> async_nats::jetstream::context::PublishAckFuture {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        headers.insert("id", id.as_str());
        self.js
            .publish_with_headers(self.subject.clone(), headers, self.payload.clone())
            .await
            .expect("raw nats publish")
    }
}

impl Raw for RawNats {
    fn publish(&self, id: String) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            self.enqueue(id).await.await.expect("raw nats ack");
        })
    }
    fn publish_many(&self, ids: Vec<String>) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut acks = Vec::with_capacity(ids.len());
            for id in ids {
                acks.push(self.enqueue(id).await);
            }
            for ack in acks {
                ack.await.expect("raw nats ack");
            }
        })
    }
}

fn publish_benches(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    queue: &Queue,
    topic: &str,
    raw: &dyn Raw,
) {
    let mut g = c.benchmark_group(format!("queue/{name}/publish"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("one/corekit", |b| {
        b.to_async(rt)
            .iter(|| async { queue.publish(topic, Message::new(payload())).await.unwrap() })
    });
    g.bench_function("one/raw", |b| {
        b.to_async(rt)
            .iter(|| async { raw.publish(format!("{:032x}", fastrand::u128(..))).await })
    });
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("batch/corekit", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let messages = batch();
                let start = Instant::now();
                queue.publish_batch(topic, messages).await.unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("batch/raw", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let ids: Vec<String> = (0..BATCH)
                    .map(|_| format!("{:032x}", fastrand::u128(..)))
                    .collect();
                let start = Instant::now();
                raw.publish_many(ids).await;
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn end_to_end(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, queue: &Queue) {
    let mut g = c.benchmark_group(format!("queue/{name}/end_to_end"));
    g.throughput(Throughput::Elements(E2E as u64));
    g.sample_size(10);
    let topic = unique("e2e");
    let mut sub = rt.block_on(queue.subscribe(&topic, "bench")).unwrap();
    let sub = &mut sub;
    let topic = &topic;
    g.bench_function("corekit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let messages: Vec<Message> =
                        (0..E2E).map(|_| Message::new(payload())).collect();
                    let start = Instant::now();
                    let publish = queue.publish_batch(topic, messages);
                    let consume = async {
                        for _ in 0..E2E {
                            let d = tokio::time::timeout(Duration::from_secs(60), sub.next())
                                .await
                                .expect("e2e receive timed out")
                                .unwrap()
                                .unwrap();
                            d.ack().await.unwrap();
                        }
                    };
                    let (p, ()) = tokio::join!(publish, consume);
                    p.unwrap();
                    total += start.elapsed();
                }
                total
            })
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

    // Kafka (Tansu).
    let brokers = env("COREKIT_TEST_KAFKA_BROKERS", "127.0.0.1:9092");
    let kafka = rt.block_on(async {
        Queue::new(
            KafkaBroker::builder(&brokers)
                .session_timeout(Duration::from_secs(6))
                .build()
                .await
                .expect("kafka: scripts/services.sh up kafka"),
        )
    });
    let topic = unique("kafka");
    rt.block_on(kafka.ensure_topic(&topic)).unwrap();
    let raw = RawKafka {
        producer: rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .unwrap(),
        topic: topic.clone(),
        payload: payload(),
    };
    publish_benches(c, &rt, "kafka", &kafka, &topic, &raw);
    end_to_end(c, &rt, "kafka", &kafka);

    // RabbitMQ.
    let url = env(
        "COREKIT_TEST_AMQP_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    );
    let rabbit = rt.block_on(async {
        Queue::new(
            RabbitMqBroker::builder(&url)
                .build()
                .await
                .expect("rabbitmq: scripts/services.sh up rabbitmq"),
        )
    });
    let topic = unique("rabbit");
    rt.block_on(rabbit.ensure_group(&topic, "bench")).unwrap();
    let raw = rt.block_on(async {
        let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .unwrap();
        RawRabbit {
            _connection: connection,
            channel,
            exchange: topic.clone(),
            payload: payload(),
        }
    });
    publish_benches(c, &rt, "rabbitmq", &rabbit, &topic, &raw);
    rt.block_on(rabbit.delete_topic(&topic)).unwrap();
    end_to_end(c, &rt, "rabbitmq", &rabbit);

    // NATS JetStream.
    let url = env("COREKIT_TEST_NATS_URL", "nats://127.0.0.1:4222");
    let nats = rt.block_on(async {
        Queue::new(
            NatsBroker::builder(&url)
                .build()
                .await
                .expect("nats: scripts/services.sh up nats"),
        )
    });
    let topic = unique("nats");
    rt.block_on(nats.ensure_topic(&topic)).unwrap();
    let raw = rt.block_on(async {
        RawNats {
            js: async_nats::jetstream::new(async_nats::connect(&url).await.unwrap()),
            subject: topic.clone(),
            payload: payload(),
        }
    });
    publish_benches(c, &rt, "nats", &nats, &topic, &raw);
    rt.block_on(nats.delete_topic(&topic)).unwrap();
    end_to_end(c, &rt, "nats", &nats);
}

criterion_group! {
    name = queue;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    targets = benches
}
criterion_main!(queue);
