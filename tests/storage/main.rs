//! The storage module: one conformance suite run on the in-memory and local backends, plus the
//! local backend's own guarantees.

#[path = "../support/mod.rs"]
mod support;

mod azure;
mod conformance;
mod faults;
mod gcs;
mod local;
mod memory;
mod s3;
