//! The signal a service stops on.

/// Completes when the process is asked to stop: SIGINT (Ctrl-C) or SIGTERM (what `docker
/// stop`, Kubernetes and systemd send) on Unix, Ctrl-C elsewhere. Hand it to whatever drains on
/// shutdown (a queue consumer's `run`, a scheduler), so a deploy stops the worker cleanly
/// instead of killing it mid-message.
///
/// A signal that cannot be listened for (no signal driver) is logged and never fires; the
/// other still does.
///
/// ```no_run
/// # #[cfg(feature = "queue-memory")]
/// # async fn run(queue: corekit::queue::Queue) -> corekit::Result<()> {
/// use corekit::queue::Message;
/// queue
///     .consumer("orders", "billing")
///     .run(|_m: Message| async { Ok::<(), corekit::Error>(()) }, corekit::shutdown_signal())
///     .await?;
/// # Ok(()) }
/// ```
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let name = tokio::select! {
        () = interrupt => "SIGINT",
        () = terminate => "SIGTERM",
    };
    tracing::info!(signal = name, "shutdown requested");
}
