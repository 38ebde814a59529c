//! SMTP: maildev (plain, and implicit TLS with auth on a maildev this test starts), aiosmtpd
//! (STARTTLS), and fake servers for the faults.

use crate::mime::check_mime;
use crate::support;
use corekit::ErrorKind;
use corekit::email::conformance::full_email;
use corekit::email::{Email, Mailer, Retry, SmtpTransport, Transport};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn maildev_message(tag: &str) -> (serde_json::Value, Vec<u8>) {
    let api = support::MAILDEV_API.require();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: Vec<serde_json::Value> = reqwest::get(format!("{api}/api/email"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(m) = list
            .into_iter()
            .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(tag)))
        {
            let id = m["id"].as_str().unwrap().to_owned();
            let raw = reqwest::get(format!("{api}/api/email/{id}/source"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            return (m, raw.to_vec());
        }
        assert!(Instant::now() < deadline, "maildev never received {tag}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn maildev_receives_every_field_byte_exact() {
    let url = support::SMTP.require();
    let transport = SmtpTransport::from_url(&format!("{url}?tls=none"))
        .unwrap()
        .build()
        .unwrap();
    let tag = support::unique("smtp");
    let sent = Mailer::new(transport).send(full_email(&tag)).await.unwrap();
    assert_eq!(sent.transport, "smtp");
    let (json, raw) = maildev_message(&tag).await;
    check_mime(&raw, &tag);
    let envelope: Vec<&str> = json["envelope"]["to"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["address"].as_str())
        .collect();
    for rcpt in [
        "ada@example.com",
        "grace@example.com",
        "cc@example.com",
        "hidden@example.com",
    ] {
        assert!(
            envelope.contains(&rcpt),
            "{rcpt} in the envelope: {envelope:?}"
        );
    }
}

#[tokio::test]
async fn pooled_concurrent_sends_all_arrive() {
    let url = support::SMTP.require();
    let transport = SmtpTransport::from_url(&format!("{url}?tls=none"))
        .unwrap()
        .pool_size(4)
        .build()
        .unwrap();
    let mailer = Mailer::new(transport);
    let tag = support::unique("pool");
    let sends = (0..40).map(|i| {
        let mailer = mailer.clone();
        let tag = tag.clone();
        async move {
            let e = Email::builder()
                .from("a@example.com")
                .to("b@example.com")
                .subject(format!("{tag} #{i}"))
                .text("x")
                .build()
                .unwrap();
            mailer.send(e).await.unwrap()
        }
    });
    futures_util::future::join_all(sends).await;
    let api = support::MAILDEV_API.require();
    let list: Vec<serde_json::Value> = reqwest::get(format!("{api}/api/email"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = list
        .iter()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains(&tag)))
        .count();
    assert_eq!(n, 40);
}

fn starttls_ca() -> Vec<u8> {
    let path = std::env::var("COREKIT_TEST_STARTTLS_CA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| support::services_dir().join("starttls/ca.pem"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/services.sh up starttls creates it)",
            path.display()
        )
    })
}

#[tokio::test]
async fn starttls_required_with_a_private_ca() {
    let url = support::STARTTLS.require();
    let transport = SmtpTransport::from_url(&format!("{url}?tls=required"))
        .unwrap()
        .root_ca_pem(starttls_ca())
        .build()
        .unwrap();
    let tag = support::unique("starttls");
    Mailer::new(transport).send(full_email(&tag)).await.unwrap();
    let maildir = support::services_dir().join("starttls/maildir/new");
    let deadline = Instant::now() + Duration::from_secs(10);
    let raw = loop {
        let found = std::fs::read_dir(&maildir)
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .find(|raw| {
                String::from_utf8_lossy(raw).contains(&tag) || {
                    // The subject is RFC 2047-encoded: look for the tag in the decoded form.
                    mail_parser::MessageParser::default()
                        .parse(raw)
                        .and_then(|m| m.subject().map(|s| s.contains(&tag)))
                        .unwrap_or(false)
                }
            });
        if let Some(raw) = found {
            break raw;
        }
        assert!(Instant::now() < deadline, "aiosmtpd never stored {tag}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // aiosmtpd prepends the envelope as X-Peer / X-MailFrom / X-RcptTo: the receiver's
    // headers, not the message's.
    let text = String::from_utf8(raw).unwrap();
    let own: String = text
        .split_inclusive('\n')
        .filter(|l| {
            !["X-Peer:", "X-MailFrom:", "X-RcptTo:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .collect();
    assert!(
        text.contains("X-RcptTo: ") && text.contains("hidden@example.com"),
        "bcc in the envelope"
    );
    check_mime(own.as_bytes(), &tag);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_config_error_not_a_retry() {
    let url = support::STARTTLS.require();
    let transport = SmtpTransport::from_url(&format!("{url}?tls=required"))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    let e = transport.send(&full_email("untrusted")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("certificate"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn tls_required_against_a_server_without_starttls_fails() {
    let url = support::SMTP.require();
    let transport = SmtpTransport::from_url(&format!("{url}?tls=required"))
        .unwrap()
        .build()
        .unwrap();
    let e = transport.send(&full_email("nostarttls")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("STARTTLS"), "{e}");
}

/// A maildev of this test's own with implicit TLS and a login.
struct SecureMaildev {
    child: Child,
    smtp: u16,
    api: u16,
    dir: std::path::PathBuf,
}

impl SecureMaildev {
    fn start() -> Self {
        let bin = support::services_dir().join("npm/node_modules/.bin/maildev");
        assert!(
            bin.exists(),
            "{} missing: scripts/services.sh up smtp installs it",
            bin.display()
        );
        let dir = std::env::temp_dir().join(support::unique("maildev-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        support::test_certificates(&dir);
        let (smtp, api) = (support::free_port(), support::free_port());
        let child = Command::new(bin)
            .args(["--ip", "127.0.0.1", "--web-ip", "127.0.0.1"])
            .args(["-s", &smtp.to_string(), "-w", &api.to_string()])
            .arg("--incoming-secure")
            .arg("--incoming-cert")
            .arg(dir.join("server.pem"))
            .arg("--incoming-key")
            .arg(dir.join("server.key"))
            .args(["--incoming-user", "app", "--incoming-pass", "s3cret:/@"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !support::answers(&format!("127.0.0.1:{smtp}")) {
            assert!(Instant::now() < deadline, "secure maildev did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            smtp,
            api,
            dir,
        }
    }
}

impl Drop for SecureMaildev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn implicit_tls_with_login_and_wrong_password() {
    let server = SecureMaildev::start();
    let ca = std::fs::read(server.dir.join("ca.pem")).unwrap();
    // The password has URL-reserved characters, percent-encoded in the URL.
    let url = format!("smtps://app:s3cret%3A%2F%40@127.0.0.1:{}", server.smtp);
    let transport = SmtpTransport::from_url(&url)
        .unwrap()
        .root_ca_pem(ca.clone())
        .build()
        .unwrap();
    let tag = support::unique("smtps");
    Mailer::new(transport).send(full_email(&tag)).await.unwrap();
    let list: Vec<serde_json::Value> =
        reqwest::get(format!("http://127.0.0.1:{}/api/email", server.api))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(
        list.iter()
            .any(|m| m["subject"].as_str().is_some_and(|s| s.contains(&tag)))
    );

    let wrong = SmtpTransport::from_url(&format!("smtps://app:nope@127.0.0.1:{}", server.smtp))
        .unwrap()
        .root_ca_pem(ca)
        .build()
        .unwrap();
    let e = wrong.send(&full_email("wrongpass")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(!e.is_retryable());
    assert!(!e.to_string().contains("nope"), "password leaked: {e}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_bound() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s); // accept, never speak
        }
    });
    let transport = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{port}?tls=none"))
        .unwrap()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let start = Instant::now();
    let e = transport.send(&full_email("silent")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_retryable());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// A minimal SMTP server: accepts every transaction; `close_after_data` hangs up right after
/// each message (like a server dropping idle clients), `close_at_mail` mid-transaction.
async fn fake_smtp(
    close_after_data: bool,
    close_at_mail: bool,
) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (connections, messages) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, m) = (connections.clone(), messages.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let m = m.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 fake ESMTP\r\n").await;
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            m.fetch_add(1, Ordering::SeqCst);
                            let _ = w.write_all(b"250 queued as FAKE\r\n").await;
                            if close_after_data {
                                return;
                            }
                        }
                        continue;
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-fake\r\n250 8BITMIME\r\n",
                        "MAIL" if close_at_mail => return,
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (port, connections, messages)
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced_not_reused() {
    let (port, connections, messages) = fake_smtp(true, false).await;
    let transport = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{port}?tls=none"))
        .unwrap()
        .pool_size(1)
        .build()
        .unwrap();
    for i in 0..3 {
        transport
            .send(&full_email(&format!("idle{i}")))
            .await
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
    }
    assert_eq!(messages.load(Ordering::SeqCst), 3);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        3,
        "each dead connection replaced once"
    );
}

#[tokio::test]
async fn a_server_closing_mid_send_is_a_retryable_error_and_the_mailer_retries() {
    let (port, connections, _) = fake_smtp(false, true).await;
    let transport = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{port}?tls=none"))
        .unwrap()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let e = transport.send(&full_email("midsend")).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let mailer = Mailer::builder(transport)
        .retry(Retry::new(3, Duration::from_millis(10)))
        .build();
    let before = connections.load(Ordering::SeqCst);
    let e = mailer.send(full_email("midsend2")).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(
        connections.load(Ordering::SeqCst) - before,
        3,
        "three attempts"
    );
}

/// The conformance suite on SMTP against maildev: the inbox finds the message by its subject
/// through maildev's REST API and reads its raw source.
mod suite {
    use crate::conformance::Inbox;
    use crate::support;
    use corekit::email::conformance::Delivered;
    use corekit::email::{SmtpTransport, Transport};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    async fn source(api: &str, subject: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list: Vec<serde_json::Value> = reqwest::get(format!("{api}/api/email"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(m) = list.iter().find(|m| m["subject"].as_str() == Some(subject)) {
                let id = m["id"].as_str().unwrap();
                let raw = reqwest::get(format!("{api}/api/email/{id}/source"))
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                return raw.to_vec();
            }
            assert!(
                Instant::now() < deadline,
                "maildev never received {subject:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn setup() -> (Arc<dyn Transport>, Inbox) {
        let url = support::SMTP.require();
        let api = support::MAILDEV_API.require();
        let transport = SmtpTransport::from_url(&format!("{url}?tls=none"))
            .unwrap()
            .build()
            .unwrap();
        let inbox: Inbox = Box::new(move |sent, _id| {
            let api = api.clone();
            Box::pin(async move { Delivered::Mime(source(&api, sent.subject()).await) })
        });
        (Arc::new(transport), inbox)
    }

    crate::email_suite!();
}
