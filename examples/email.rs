//! Transactional email with `corekit::email`: a templated welcome mail with an attachment, sent
//! through whatever `EMAIL_BACKEND` says (the in-memory outbox by default, so this runs with no
//! server), retried on transient failures.
//!
//! ```sh
//! cargo run --example email --features email-templates
//! EMAIL_BACKEND=file EMAIL_FILE_DIR=/tmp/outbox cargo run --example email --features email-templates
//! EMAIL_BACKEND=smtp EMAIL_SMTP_URL='smtp://127.0.0.1:1025?tls=none' \
//!   cargo run --example email --features email-smtp,email-templates    # maildev: http://127.0.0.1:1080
//! ```

use corekit::config::EnvConfig;
use corekit::email::{Attachment, Email, EmailConfig, Mailer, Templates};

const TEMPLATES: [(&str, &str); 4] = [
    (
        "layout.html",
        "<html><body>{% block content %}{% endblock %}<p>— The Acme team</p></body></html>",
    ),
    ("welcome.subject", "Welcome to Acme, {{ name }}"),
    (
        "welcome.html",
        "{% extends \"layout.html\" %}{% block content %}<h1>Hi {{ name }}!</h1><p>Your plan: <b>{{ plan }}</b></p>{% endblock %}",
    ),
    (
        "welcome.txt",
        "Hi {{ name }}!\nYour plan: {{ plan }}\n— The Acme team",
    ),
];

#[tokio::main]
async fn main() -> corekit::Result<()> {
    let mut config = EmailConfig::from_env()?;
    if config.from.is_none() {
        config.from = Some("Acme <hello@acme.example>".into());
    }
    let base = Mailer::from_config(&config).await?;
    println!("transport: {}", base.backend_name());

    // Templates: one name renders subject, HTML and text; a missing variable is an error.
    let templates = Templates::from_strings(TEMPLATES)?;
    let rendered = templates.render(
        "welcome",
        &serde_json::json!({"name": "Ada", "plan": "Pro <annual>"}),
    )?;
    println!("subject: {}", rendered.subject);
    println!("html: {}", rendered.html.as_deref().unwrap_or_default());
    if let Err(e) = templates.render("welcome", &serde_json::json!({"name": "Ada"})) {
        println!("rejected: {e}");
    }

    let email = rendered
        .apply(
            Email::builder()
                .to("Ada Lovelace <ada@example.com>")
                .attachment(Attachment::new(
                    "terms.txt",
                    "text/plain",
                    "Be excellent to each other.\n",
                ))
                .tag("welcome")
                .idempotency_key("welcome-ada"),
        )
        .build()?;
    let sent = base.send(email).await?;
    println!(
        "sent via {} in {} attempt(s), id {:?}",
        sent.transport, sent.attempts, sent.message_id
    );

    // Header injection never reaches a server.
    let bad = Email::builder()
        .to("ada@example.com")
        .subject("Hi\r\nBcc: everyone@example.com")
        .text("x")
        .build();
    println!("rejected: {}", bad.unwrap_err());
    Ok(())
}
