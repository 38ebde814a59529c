use corekit::queue::{MemoryBroker, Message, Queue};

async fn queue() -> Queue {
    Queue::new(MemoryBroker::new())
}

crate::queue_suite!();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_queue() {
    corekit::queue::conformance::run_all(queue().await).await;
}

#[tokio::test]
async fn a_topic_without_groups_keeps_messages_for_its_first_group() {
    let broker = MemoryBroker::new();
    let queue = Queue::new(broker.clone());
    queue.publish("early", Message::new("1")).await.unwrap();
    queue.ensure_group("early", "g").await.unwrap();
    assert_eq!(broker.ready_len("early", "g"), 1);
    queue.ensure_group("early", "late").await.unwrap();
    assert_eq!(
        broker.ready_len("early", "late"),
        0,
        "only the first group gets the backlog"
    );
}

/// A handler that panics before it even returns its future costs that attempt only: the
/// lane carries on (it used to die, stalling every message of its keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_panicking_before_its_future_does_not_stall_the_consumer() {
    use corekit::queue::Message;
    use std::time::Duration;
    let queue = Queue::new(MemoryBroker::new());
    let t = corekit::queue::conformance::unique_topic("syncpanic");
    queue.ensure_group(&t, "g").await.unwrap();
    for body in ["boom", "a", "b"] {
        queue
            .publish(&t, Message::new(body).with_key("k"))
            .await
            .unwrap();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        queue
            .consumer(&t, "g")
            .concurrency(1)
            .backoff(Duration::from_millis(10), Duration::from_millis(10))
            .run(
                |m: Message| {
                    assert!(
                        !(&m.payload[..] == b"boom" && m.attempt == 1),
                        "panics before any future exists"
                    );
                    std::future::ready(Ok::<(), corekit::Error>(()))
                },
                async move {
                    let _ = stopped.await;
                },
            ),
    );
    // Plenty for three messages and one 10 ms retry; a dead lane would ack none.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop.send(());
    let report = run.await.unwrap().unwrap();
    assert_eq!((report.acked, report.panicked), (3, 1), "{report:?}");
}
