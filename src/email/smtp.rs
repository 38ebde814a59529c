//! SMTP on lettre's connection, with corekit's own pool: TCP_NODELAY on every plain and STARTTLS
//! connection, bounded concurrency, a timeout over the whole send, and no reuse of a connection
//! whose send failed or timed out.

use super::{BoxFuture, Email, Transport, bounded};
use crate::{Error, ErrorKind, Result};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Plain text, never TLS (`?tls=none`).
    None,
    /// STARTTLS when the server offers it, plain text otherwise (`?tls=opportunistic`).
    Opportunistic,
    /// STARTTLS or fail (the `smtp://` default, `?tls=required`).
    Required,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// Builds an [`SmtpTransport`]; from [`SmtpTransport::from_url`] or [`SmtpTransport::builder`].
#[derive(Clone)]
#[must_use]
pub struct SmtpBuilder {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<(String, crate::config::Secret)>,
    ca_pem: Option<Vec<u8>>,
    pool_size: usize,
    timeout: Duration,
    idle_timeout: Duration,
    hello: Option<String>,
}

impl std::fmt::Debug for SmtpBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpBuilder {
    /// Username and password (PLAIN or LOGIN, whichever the server offers). Refused over a
    /// connection that is not encrypted unless the URL says `?tls=none`.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), crate::config::Secret::new(password)));
        self
    }

    /// Trust these PEM CA certificates instead of the system roots.
    pub fn root_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Connections kept, and sends in flight at once (default 8).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Bound on one send: waiting for a connection, connecting, TLS, auth, the transaction and
    /// the server's answer (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Idle connections older than this are closed instead of reused (default 30 s; servers
    /// close idle clients after a while, and a dead connection must not eat a send).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The name sent in EHLO (default: this host's name).
    pub fn hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello = Some(name.into());
        self
    }

    /// The transport (connections open on first use).
    ///
    /// # Errors
    /// [`Config`](ErrorKind::Config) for an unusable CA file or credentials over plain text.
    pub fn build(self) -> Result<SmtpTransport> {
        if self.credentials.is_some() && self.security == Security::None {
            return Err(Error::config(
                "SMTP credentials over an unencrypted connection: use smtps://, \
                 ?tls=required, or drop ?tls=none",
            ));
        }
        let tls = if self.security == Security::None {
            None
        } else {
            let mut params = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.ca_pem {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| Error::config(format!("SMTP CA certificate: {e}")))?;
                params = params
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            }
            Some(
                params
                    .build_rustls()
                    .map_err(|e| Error::config(format!("SMTP TLS settings: {e}")))?,
            )
        };
        let hello = match &self.hello {
            Some(h) => ClientId::Domain(h.clone()),
            None => ClientId::default(),
        };
        Ok(SmtpTransport {
            inner: Arc::new(Inner {
                permits: Semaphore::new(self.pool_size),
                idle: Mutex::new(Vec::new()),
                tls,
                hello,
                builder: self,
            }),
        })
    }
}

/// SMTP through lettre's connection with corekit's pool.
///
/// lettre's own async transport never sets TCP_NODELAY (each message then stalls on Nagle and
/// delayed ACKs: about 20 messages/s on one connection), bounds only the TCP connect, lets
/// `max_size` bound idle connections rather than sends, and can put a connection back mid-
/// transaction after a cancelled send. This transport connects its own sockets with
/// TCP_NODELAY (plain and STARTTLS; implicit TLS uses lettre's connect), runs at most
/// `pool_size` sends at once, bounds each whole send, and reuses only connections whose last
/// send succeeded and that were idle less than `idle_timeout`. A reused connection that turns
/// out dead is replaced once, at once.
#[derive(Clone)]
pub struct SmtpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    builder: SmtpBuilder,
    permits: Semaphore,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    tls: Option<TlsParameters>,
    hello: ClientId,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("builder", &self.inner.builder)
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    /// A builder for `host:port` that sends only after STARTTLS (as `smtp://` does).
    pub fn builder(host: impl Into<String>, port: u16) -> SmtpBuilder {
        SmtpBuilder {
            host: host.into(),
            port,
            security: Security::Required,
            credentials: None,
            ca_pem: None,
            pool_size: 8,
            timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            hello: None,
        }
    }

    /// A builder from a URL: `smtp://[user:pass@]host[:port][?tls=none|opportunistic|required]`
    /// (port 25 by default) or
    /// `smtps://[user:pass@]host[:port]` (implicit TLS, port 465 by default).
    ///
    /// # Errors
    /// [`Config`](ErrorKind::Config) naming what is wrong with the URL (password redacted).
    pub fn from_url(url: &str) -> Result<SmtpBuilder> {
        let shown = crate::config::redact_url(url);
        let bad = |why: &str| Error::config(format!("SMTP URL {shown:?}: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (implicit, default_port) = match scheme {
            "smtp" => (false, 25),
            "smtps" => (true, 465),
            _ => return Err(bad("the scheme must be smtp or smtps")),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            ),
            _ => (hostport, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let mut b = Self::builder(host, port);
        // Unlike lettre's `smtp://` (plain text), nothing goes out in clear unless the URL asks.
        b.security = if implicit {
            Security::Implicit
        } else {
            Security::Required
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("tls", "none")) if !implicit => b.security = Security::None,
                Some(("tls", "opportunistic")) if !implicit => {
                    b.security = Security::Opportunistic;
                }
                Some(("tls", "required")) if !implicit => b.security = Security::Required,
                _ => {
                    return Err(bad(&format!(
                        "unknown parameter {pair:?} (smtp:// takes tls=none|opportunistic|required)"
                    )));
                }
            }
        }
        if let Some(userinfo) = userinfo {
            let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            b = b.credentials(
                crate::config::percent_decode(user),
                crate::config::percent_decode(pass),
            );
        }
        Ok(b)
    }

    fn idle(&self) -> MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection young enough to trust, if any.
    fn reuse(&self) -> Option<AsyncSmtpConnection> {
        let max_idle = self.inner.builder.idle_timeout;
        let mut idle = self.idle();
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < max_idle && !conn.has_broken() {
                return Some(conn);
            }
        }
        None
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection> {
        let b = &self.inner.builder;
        let hello = &self.inner.hello;
        let mut conn = if b.security == Security::Implicit {
            AsyncSmtpConnection::connect_tokio1(
                (b.host.as_str(), b.port),
                Some(b.timeout),
                hello,
                self.inner.tls.clone(),
                None,
            )
            .await
            .map_err(|e| smtp_error(e, "connecting"))?
        } else {
            let tcp = tokio::net::TcpStream::connect((b.host.as_str(), b.port))
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Unavailable,
                        format!("connecting to {}:{}: {e}", b.host, b.port),
                    )
                    .with_source(e)
                })?;
            // lettre writes a message and its final dot separately: without this, every
            // message waits on Nagle's algorithm and the server's delayed ACK.
            let _ = tcp.set_nodelay(true);
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), hello)
                .await
                .map_err(|e| smtp_error(e, "greeting"))?
        };
        match (b.security, &self.inner.tls) {
            (Security::Required, _) if !conn.can_starttls() => {
                return Err(Error::config(format!(
                    "{}:{} does not offer STARTTLS, and smtp:// sends nothing in clear: add \
                     ?tls=none to the URL to send unencrypted (a local relay), or use smtps://",
                    b.host, b.port
                )));
            }
            (Security::Required | Security::Opportunistic, Some(tls)) if conn.can_starttls() => {
                conn.starttls(tls.clone(), hello)
                    .await
                    .map_err(|e| smtp_error(e, "STARTTLS"))?;
            }
            _ => {}
        }
        if let Some((user, pass)) = &b.credentials {
            if !conn.is_encrypted() && b.security != Security::None {
                return Err(Error::config(format!(
                    "{}:{} did not offer STARTTLS: refusing to send credentials in plain text",
                    b.host, b.port
                )));
            }
            let credentials = Credentials::new(user.clone(), pass.expose().to_owned());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(|e| smtp_error(e, "authenticating"))?;
        }
        Ok(conn)
    }

    async fn send_once(
        &self,
        mut conn: AsyncSmtpConnection,
        envelope: &lettre::address::Envelope,
        bytes: &[u8],
    ) -> std::result::Result<(AsyncSmtpConnection, String), (SmtpError, AsyncSmtpConnection)> {
        match conn.send(envelope, bytes).await {
            Ok(response) => Ok((conn, response.message().collect::<Vec<_>>().join(" "))),
            Err(e) => Err((e, conn)),
        }
    }

    async fn send_bytes(
        &self,
        envelope: &lettre::address::Envelope,
        bytes: &[u8],
    ) -> Result<String> {
        let (conn, reused) = match self.reuse() {
            Some(c) => (c, true),
            None => (self.connect().await?, false),
        };
        let (conn, reply) = match self.send_once(conn, envelope, bytes).await {
            Ok(ok) => ok,
            // A reused connection the server closed while it sat idle: replace it, once.
            Err((e, _dead)) if reused && e.status().is_none() => {
                tracing::debug!(error = %e, "smtp: idle connection was dead; reconnecting");
                let fresh = self.connect().await?;
                self.send_once(fresh, envelope, bytes)
                    .await
                    .map_err(|(e, _)| smtp_error(e, "sending"))?
            }
            Err((e, _)) => return Err(smtp_error(e, "sending")),
        };
        self.idle().push((conn, Instant::now()));
        Ok(reply)
    }
}

/// Maps lettre's SMTP error to corekit's: 4xx and connection trouble are transient, 5xx
/// permanent, bad credentials and untrusted certificates are configuration problems.
fn smtp_error(e: SmtpError, what: &str) -> Error {
    let chain = crate::error::chain_text(&e);
    let code = e.status().map(u16::from);
    let (kind, retryable) = if e.is_timeout() {
        (ErrorKind::Timeout, true)
    } else if e.is_transient() {
        (ErrorKind::Unavailable, true)
    } else if matches!(code, Some(530 | 534 | 535 | 538)) {
        (ErrorKind::PermissionDenied, false)
    } else if e.is_permanent() {
        (ErrorKind::Backend, false)
    } else if chain.contains("certificate") || e.is_tls() {
        (ErrorKind::Config, false)
    } else if e.is_client() {
        (ErrorKind::InvalidInput, false)
    } else {
        (ErrorKind::Unavailable, true)
    };
    Error::new(kind, format!("SMTP {what}: {chain}"))
        .with_backend("smtp")
        .with_retryable(retryable)
        .with_source(e)
}

impl Transport for SmtpTransport {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let message = super::mime::message(email)?;
            let bytes = message.formatted();
            let envelope = message.envelope();
            // Dropping the future on timeout drops the connection with it: a connection is
            // only ever pooled after a send that finished.
            bounded(
                self.inner.builder.timeout,
                || "SMTP send".to_owned(),
                async {
                    let _permit =
                        self.inner.permits.acquire().await.map_err(|_| {
                            Error::new(ErrorKind::Unavailable, "SMTP transport closed")
                        })?;
                    self.send_bytes(envelope, &bytes).await.map(Some)
                },
            )
            .await
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(bounded(
            self.inner.builder.timeout,
            || "SMTP ping".to_owned(),
            async {
                let mut conn = self.connect().await?;
                let alive = conn.test_connected().await;
                let _ = conn.quit().await;
                if alive {
                    Ok(())
                } else {
                    Err(Error::new(
                        ErrorKind::Unavailable,
                        "SMTP server did not answer NOOP",
                    ))
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let b = SmtpTransport::from_url("smtp://127.0.0.1:2525?tls=required").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.security),
            ("127.0.0.1", 2525, Security::Required)
        );
        let b = SmtpTransport::from_url("smtps://us%40er:p%25ss%3Aw@mail.example.com").unwrap();
        assert_eq!((b.port, b.security), (465, Security::Implicit));
        let (user, pass) = b.credentials.as_ref().unwrap();
        assert_eq!((user.as_str(), pass.expose()), ("us@er", "p%ss:w"));
        let b = SmtpTransport::from_url("smtp://h").unwrap();
        assert_eq!(
            (b.port, b.security),
            (25, Security::Required),
            "never clear by default"
        );
        let b = SmtpTransport::from_url("smtp://h?tls=opportunistic").unwrap();
        assert_eq!(b.security, Security::Opportunistic);
        assert_eq!(crate::config::percent_decode("%zz%4"), "%zz%4");
        assert_eq!(crate::config::percent_decode("é%41"), "éA");
        for bad in [
            "http://h",
            "smtp://",
            "smtp://h:x",
            "smtp://h?tls=maybe",
            "smtps://h?tls=none",
        ] {
            let e = SmtpTransport::from_url(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
        }
        let e = SmtpTransport::from_url("smtp://u:secret@h?tls=none")
            .unwrap()
            .build()
            .unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
