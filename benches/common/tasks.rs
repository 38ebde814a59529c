//! Shared by the Redis benches: an operation run over many concurrent tokio tasks.

use criterion::BenchmarkId;
use std::future::Future;
use std::time::{Duration, Instant};

/// One benchmark: `op` run over `tasks` concurrent tasks on `rt`.
#[allow(dead_code)] // not every bench including this file uses it
pub fn bench_tasks<F, Fut>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    tasks: usize,
    op: F,
) where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    group.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.to_async(rt)
            .iter_custom(|iters| run_tasks(tasks, iters, op.clone()))
    });
}

/// `iters` calls of `op`, spread over `tasks` concurrent tasks; total wall time.
pub async fn run_tasks<F, Fut>(tasks: usize, iters: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per = (iters / tasks as u64).max(1);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks as u64 {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per {
                op(t * per + i).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    start.elapsed()
}
