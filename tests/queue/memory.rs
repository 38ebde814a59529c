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
