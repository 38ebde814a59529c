//! The storage module: the public conformance suite run on every backend (memory, local,
//! SeaweedFS for S3, fake-gcs-server, Azurite), plus each backend's own guarantees and faults.

#[path = "../support/mod.rs"]
mod support;

mod azure;
mod conformance;
mod faults;
mod from_config;
mod gcs;
mod local;
mod memory;
mod s3;
mod scratch;

use bytes::Bytes;
use corekit::storage::{ObjectPath, PresignMethod, PresignedRequest};

/// A key the test knows is valid.
pub fn key(s: &str) -> ObjectPath {
    ObjectPath::new(s).unwrap()
}

/// Sends one presigned request with reqwest: the HTTP client the conformance suite asks for.
pub async fn http(request: PresignedRequest, body: Bytes) -> (u16, Bytes) {
    let client = reqwest::Client::new();
    let mut builder = match request.method {
        PresignMethod::Get => client.get(&request.url),
        PresignMethod::Put => client.put(&request.url).body(body),
    };
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let answer = builder
        .send()
        .await
        .unwrap_or_else(|e| panic!("{:?} {}: {e}", request.method, request.url));
    let status = answer.status().as_u16();
    (status, answer.bytes().await.unwrap())
}
