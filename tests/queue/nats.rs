use crate::support;
use corekit::queue::{NatsBroker, Queue};

async fn queue() -> Queue {
    let url = support::NATS.require();
    Queue::new(NatsBroker::builder(url).build().await.unwrap())
}

crate::queue_suite!();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_mode_is_fire_and_forget_with_exact_headers() {
    use corekit::ErrorKind;
    use corekit::queue::{Message, NatsMode};
    use futures_util::StreamExt;
    let url = support::NATS.require();
    let queue = Queue::new(
        NatsBroker::builder(url)
            .mode(NatsMode::Core)
            .build()
            .await
            .unwrap(),
    );
    let t = corekit::queue::conformance::unique_topic("core");
    let mut a = queue.subscribe(&t, "g").await.unwrap();
    let mut b = queue.subscribe(&t, "g").await.unwrap();
    let sent = Message::new("telemetry")
        .with_key("k")
        .with_header("traceparent", "00-1-2-01");
    queue.publish(&t, sent.clone()).await.unwrap();
    // A queue group: exactly one of the two members gets it.
    let d = tokio::select! {
        d = a.next() => d,
        d = b.next() => d,
    }
    .unwrap()
    .unwrap();
    assert_eq!(d.message().headers, sent.headers);
    assert_eq!(d.message().key.as_deref(), Some("k"));
    assert_eq!(d.message().id, sent.id);
    let e = d.retry_after(std::time::Duration::ZERO).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_limits_come_from_the_topic_options() {
    use corekit::queue::TopicOptions;
    use std::time::Duration;
    let url = support::NATS.require();
    // A topic's own options, and the broker's defaults for topics made on first use.
    let defaults = TopicOptions::default()
        .retention(Duration::from_secs(3600))
        .retention_messages(500);
    let broker = NatsBroker::builder(url)
        .topic_options(defaults)
        .build()
        .await
        .unwrap();
    let js = broker.jetstream().clone();
    let queue = Queue::new(broker);
    let own = corekit::queue::conformance::unique_topic("limits");
    queue
        .ensure_topic_with(
            &own,
            &TopicOptions::default()
                .retention(Duration::from_secs(60))
                .retention_bytes(1 << 20)
                .retention_messages(1000),
        )
        .await
        .unwrap();
    let implicit = corekit::queue::conformance::unique_topic("limits");
    queue
        .publish(&implicit, corekit::queue::Message::new("x"))
        .await
        .unwrap();
    for (topic, age, bytes, msgs) in [(&own, 60, 1 << 20, 1000), (&implicit, 3600, -1, 500)] {
        let name = js.stream_by_subject(topic.as_str()).await.unwrap();
        let mut stream = js.get_stream(&name).await.unwrap();
        let config = stream.info().await.unwrap().config.clone();
        assert_eq!(config.max_age, Duration::from_secs(age), "{topic}");
        assert_eq!(config.max_bytes, bytes, "{topic}");
        assert_eq!(config.max_messages, msgs, "{topic}");
        assert_eq!(config.num_replicas, 1, "{topic}");
        queue.delete_topic(topic).await.unwrap();
    }
}

/// The whole suite on a three-node JetStream cluster (`scripts/services.sh up nats_cluster`),
/// every stream with three replicas, so each publish is acknowledged by a quorum.
mod cluster {
    use super::*;
    use corekit::queue::TopicOptions;

    pub(super) async fn queue() -> Queue {
        let url = support::NATS_CLUSTER.require();
        Queue::new(
            NatsBroker::builder(url)
                .topic_options(TopicOptions::default().replication(3))
                .build()
                .await
                .unwrap(),
        )
    }

    crate::queue_suite!();

    /// The streams corekit creates there really have three replicas, each on its own node.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_have_three_replicas() {
        let queue = queue().await;
        let topic = support::unique("r3");
        queue.ensure_topic(&topic).await.unwrap();
        let js = queue.downcast_ref::<NatsBroker>().unwrap().jetstream();
        let name = js.stream_by_subject(topic.as_str()).await.unwrap();
        let info = js
            .get_stream(&name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        assert_eq!(info.config.num_replicas, 3);
        let cluster = info.cluster.expect("cluster info");
        assert_eq!(cluster.replicas.len(), 2, "two followers beside the leader");
        queue.delete_topic(&topic).await.unwrap();
    }
}
