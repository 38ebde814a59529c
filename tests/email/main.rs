//! The email module against every transport: one full email checked on the wire as SMTP
//! (maildev; aiosmtpd for STARTTLS), Amazon SES (moto) and SendGrid (a local double of the v3
//! API) received it, and through the in-memory outbox and the file transport; templates,
//! retries, failover and faults.

#[path = "../support/mod.rs"]
mod support;

mod conformance;
mod local;
mod sendgrid;
mod ses;
mod smtp;
