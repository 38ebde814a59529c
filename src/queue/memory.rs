//! In-process broker: tests, development and single-process services.

use super::{BoxFuture, Broker, Incoming, IncomingStream, Message, Settle, TopicOptions};
use crate::{Error, ErrorKind, Result};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// An in-process broker with the same semantics as the networked ones: groups, competing
/// consumers, redelivery of unsettled messages, retries. Messages live in memory only.
///
/// Clones share the same topics.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    topics: Arc<Mutex<HashMap<String, Topic>>>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Topic {
    groups: HashMap<String, Arc<GroupQueue>>,
    // Published while no group existed: handed to the first group.
    backlog: VecDeque<Message>,
}

#[derive(Default)]
struct GroupQueue {
    ready: Mutex<VecDeque<Message>>,
    notify: Notify,
    deleted: AtomicBool,
}

impl GroupQueue {
    fn ready(&self) -> MutexGuard<'_, VecDeque<Message>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push_back(&self, message: Message) {
        self.ready().push_back(message);
        self.notify.notify_one();
    }

    fn push_front(&self, message: Message) {
        self.ready().push_front(message);
        self.notify.notify_one();
    }

    async fn next(&self) -> Option<Message> {
        loop {
            let notified = self.notify.notified();
            if self.deleted.load(Ordering::Acquire) {
                return None;
            }
            if let Some(m) = self.ready().pop_front() {
                return Some(m);
            }
            notified.await;
        }
    }
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<String, Topic>> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn group(&self, topic: &str, group: &str) -> Arc<GroupQueue> {
        let mut topics = self.topics();
        let t = topics.entry(topic.to_owned()).or_default();
        if let Some(q) = t.groups.get(group) {
            return q.clone();
        }
        let q = Arc::new(GroupQueue::default());
        if t.groups.is_empty() {
            q.ready().extend(t.backlog.drain(..));
        }
        t.groups.insert(group.to_owned(), q.clone());
        q
    }

    /// Messages waiting (not yet delivered) for `group` on `topic`; tests use it.
    pub fn ready_len(&self, topic: &str, group: &str) -> usize {
        self.topics()
            .get(topic)
            .and_then(|t| t.groups.get(group))
            .map_or(0, |q| q.ready().len())
    }
}

impl Broker for MemoryBroker {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn publish<'a>(&'a self, topic: &'a str, mut message: Message) -> BoxFuture<'a, Result<()>> {
        message.attempt = 1;
        let mut topics = self.topics();
        let t = topics.entry(topic.to_owned()).or_default();
        if t.groups.is_empty() {
            t.backlog.push_back(message);
        } else {
            let mut groups = t.groups.values().peekable();
            while let Some(q) = groups.next() {
                if groups.peek().is_some() {
                    q.push_back(message.clone());
                } else {
                    q.push_back(message);
                    break;
                }
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        group: &'a str,
        _prefetch: u32,
    ) -> BoxFuture<'a, Result<IncomingStream>> {
        let queue = self.group(topic, group);
        let stream = futures_util::stream::unfold(queue, |queue| async move {
            let message = queue.next().await?;
            let settle = MemorySettle {
                queue: queue.clone(),
                unsettled: Some(message.clone()),
            };
            let item = Ok(Incoming {
                message,
                settle: Box::new(settle),
            });
            Some((item, queue))
        });
        Box::pin(std::future::ready(Ok(Box::pin(stream) as IncomingStream)))
    }

    fn ensure_topic<'a>(
        &'a self,
        topic: &'a str,
        _options: &'a TopicOptions,
    ) -> BoxFuture<'a, Result<()>> {
        self.topics().entry(topic.to_owned()).or_default();
        Box::pin(std::future::ready(Ok(())))
    }

    fn ensure_group<'a>(&'a self, topic: &'a str, group: &'a str) -> BoxFuture<'a, Result<()>> {
        self.group(topic, group);
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<()>> {
        let removed = self.topics().remove(topic);
        let result = match removed {
            Some(t) => {
                for q in t.groups.values() {
                    q.deleted.store(true, Ordering::Release);
                    q.notify.notify_waiters();
                }
                Ok(())
            }
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("topic {topic:?} does not exist"),
            )),
        };
        Box::pin(std::future::ready(result))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

struct MemorySettle {
    queue: Arc<GroupQueue>,
    // Some until settled: a drop with it still here redelivers it.
    unsettled: Option<Message>,
}

impl Settle for MemorySettle {
    fn ack(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        self.unsettled = None;
        Box::pin(std::future::ready(Ok(())))
    }

    fn retry(
        mut self: Box<Self>,
        message: Message,
        delay: Duration,
    ) -> BoxFuture<'static, Result<()>> {
        self.unsettled = None;
        let queue = self.queue.clone();
        if delay.is_zero() {
            queue.push_back(message);
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                queue.push_back(message);
            });
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Drop for MemorySettle {
    fn drop(&mut self) {
        if let Some(mut message) = self.unsettled.take() {
            message.attempt = message.attempt.saturating_add(1);
            self.queue.push_front(message);
        }
    }
}
