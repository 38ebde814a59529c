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

/// Set in the environment of [`shutdown_child`]'s process: the RabbitMQ address to proxy to.
const SHUTDOWN_CHILD: &str = "COREKIT_RABBITMQ_SHUTDOWN_CHILD";

/// The child half of [`no_panic_when_the_runtime_shuts_down_while_the_server_is_gone`]:
/// connects through a proxy living on its runtime, then drops the runtime, which takes the
/// proxy (so the server is gone for lapin) and the runtime away at once. Does nothing unless
/// spawned by that test.
#[test]
fn shutdown_child() {
    let Ok(upstream) = std::env::var(SHUTDOWN_CHILD) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accepted = links.clone();
        let proxy = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                accepted.lock().unwrap().push(link);
            }
        });
        let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
        let queue = Queue::new(RabbitMqBroker::builder(url).build().await.unwrap());
        let t = corekit::queue::conformance::unique_topic("shutdown");
        queue.ensure_group(&t, "g").await.unwrap();
        queue.publish(&t, Message::new("x")).await.unwrap();
        // The server goes away (listener and connections closed): lapin starts reconnecting.
        proxy.abort();
        for link in links.lock().unwrap().drain(..) {
            link.abort();
        }
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        // The handle outlives the runtime, as a handle in a static or a leaked task would.
        std::mem::forget(queue);
    });
    drop(rt);
    // lapin notices the closed socket and tries to reconnect meanwhile.
    std::thread::sleep(std::time::Duration::from_secs(3));
    println!("child done");
}

/// Issue 14 #13: a RabbitMQ connection that is recovering when the runtime shuts down does not
/// panic (lapin's reconnect loop used the caller's runtime as it went away).
#[test]
fn no_panic_when_the_runtime_shuts_down_while_the_server_is_gone() {
    let url = support::RABBITMQ.require();
    let upstream = support::host_port(&url);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "rabbitmq::shutdown_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SHUTDOWN_CHILD, upstream)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("child done"),
        "child did not finish: {stdout} {stderr}"
    );
    assert!(!stderr.contains("panicked"), "a thread panicked: {stderr}");
    assert!(!stdout.contains("panicked"), "a thread panicked: {stdout}");
}
