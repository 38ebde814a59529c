use crate::support;
use corekit::queue::{NatsBroker, Queue};

async fn queue() -> Queue {
    let url = support::NATS.require();
    Queue::new(NatsBroker::builder(url).connect().await.unwrap())
}

crate::queue_suite!();
