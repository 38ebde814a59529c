//! The typed handlers of a job queue, by queue name.

use crate::BoxError;
use crate::scheduler::guard::{lock, run_guarded};
use crate::scheduler::job::BoxFuture;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Handler = Arc<dyn Fn(Arc<[u8]>) -> BoxFuture + Send + Sync>;

/// Handlers with their payload type erased: each decodes JSON into its own `T`.
#[derive(Default)]
pub(crate) struct Handlers(Mutex<HashMap<String, Handler>>);

impl Handlers {
    pub(crate) fn register<T, F, Fut, E>(&self, queue: &str, handler: F)
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |payload: Arc<[u8]>| {
            let handler = handler.clone();
            Box::pin(async move {
                let job: T = serde_json::from_slice(&payload)
                    .map_err(|e| -> BoxError { format!("payload does not decode: {e}").into() })?;
                handler(job).await.map_err(Into::into)
            })
        });
        lock(&self.0).insert(queue.to_owned(), erased);
    }

    pub(crate) fn contains(&self, queue: &str) -> bool {
        lock(&self.0).contains_key(queue)
    }

    /// The queues with a handler, sorted so workers walk them in a stable order.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.0).keys().cloned().collect();
        names.sort();
        names
    }

    /// Runs one attempt of a job on `queue`: the handler's error, panic or timeout as text.
    pub(crate) async fn attempt(
        &self,
        queue: &str,
        payload: Arc<[u8]>,
        timeout: Option<Duration>,
    ) -> std::result::Result<(), String> {
        let handler = lock(&self.0).get(queue).cloned();
        match handler {
            None => Err(format!("no handler is registered for queue {queue:?}")),
            Some(handler) => run_guarded(handler(payload), timeout)
                .await
                .map_err(|f| f.message),
        }
    }
}
