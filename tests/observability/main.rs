//! Observability against a real OTLP/HTTP receiver running in this process (no collector is
//! installable here): a local HTTP server decodes the protobuf export requests, and the tests
//! assert what arrived.

#[path = "../support/mod.rs"]
mod support;

mod grpc;
mod handle;
mod receiver;
mod traces;
