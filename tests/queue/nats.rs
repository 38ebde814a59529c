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
