//! The email module against every transport: the public conformance suite on the in-memory
//! outbox, the file transport, SMTP (maildev), SendGrid (a local double of the v3 API) and
//! Amazon SES (moto); one full email cross-checked with an independent MIME reader as SMTP
//! (maildev; aiosmtpd for STARTTLS), SES and the file transport stored it; templates, retries,
//! failover and faults.

#[path = "../support/mod.rs"]
mod support;

mod conformance;
mod local;
mod mime;
mod sendgrid;
mod ses;
mod smtp;
