use crate::support;
use corekit::ErrorKind;
use corekit::queue::{Message, Queue, RabbitMqBroker};

async fn queue() -> Queue {
    let url = support::RABBITMQ.require();
    Queue::new(RabbitMqBroker::builder(url).build().await.unwrap())
}

crate::queue_suite!();

#[tokio::test]
async fn a_message_no_group_would_receive_is_an_error_not_a_silent_drop() {
    let queue = queue().await;
    let t = corekit::queue::conformance::unique_topic("unrouted");
    let e = queue.publish(&t, Message::new("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("ensure_group"), "{e}");
    queue.ensure_group(&t, "g").await.unwrap();
    queue.publish(&t, Message::new("x")).await.unwrap();
    queue.delete_topic(&t).await.unwrap();
}
