//! Presigned URLs: the one check that needs an HTTP client, which the caller lends.

use super::key;
use crate::ErrorKind;
use crate::storage::{PresignMethod, PresignedRequest, Storage};
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;

/// The HTTP client to give [`run_all`](super::run_all) for a store that presigns no URLs:
/// it is never called, and panics if it is.
pub async fn no_http(request: PresignedRequest, _body: Bytes) -> (u16, Bytes) {
    panic!(
        "the store presigned a {:?} URL, but the suite was given no HTTP client: pass one \
         (see storage::conformance::presigned_urls)",
        request.method
    )
}

/// Presigned URLs: a store without them says `Unsupported`; one with them refuses an expiry
/// over its maximum (`InvalidInput`), and its PUT and GET URLs work with no credentials;
/// a tampered URL is refused (except on fake-gcs-server, which checks no signatures).
///
/// The suite has no HTTP client of its own: `http` sends one presigned request (its method,
/// URL and headers) with `body` (empty for a GET) and answers the status code and the response
/// body, panicking when the request cannot be sent.
pub async fn presigned_urls<F, Fut>(s: Storage, base: &str, http: F)
where
    F: Fn(PresignedRequest, Bytes) -> Fut,
    Fut: Future<Output = (u16, Bytes)>,
{
    let k = key(&format!("{base}/signed/report 1.txt"));
    let Some(max) = s.capabilities().presign else {
        let e = s
            .presign(PresignMethod::Get, &k, Duration::from_secs(60))
            .await
            .expect_err("presign on a store without presigned URLs");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        return;
    };
    let too_long = max + Duration::from_secs(1);
    let e = s
        .presign(PresignMethod::Get, &k, too_long)
        .await
        .expect_err("presign past the maximum expiry");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let minute = Duration::from_secs(60);
    let put = s
        .presign(PresignMethod::Put, &k, minute)
        .await
        .expect("presign a PUT");
    assert_eq!(put.method, PresignMethod::Put);
    let url = put.url.clone();
    let (status, answer) = http(put, Bytes::from_static(b"uploaded by URL")).await;
    assert!(
        (200..300).contains(&status),
        "PUT {url}: {status} {answer:?}"
    );
    assert_eq!(
        &s.get(&k).await.expect("get what the URL uploaded").bytes[..],
        b"uploaded by URL"
    );
    let get = s
        .presign(PresignMethod::Get, &k, minute)
        .await
        .expect("presign a GET");
    assert_eq!(get.method, PresignMethod::Get);
    let get_url = get.url.clone();
    let (status, answer) = http(get, Bytes::new()).await;
    assert!((200..300).contains(&status), "GET {get_url}: {status}");
    assert_eq!(&answer[..], b"uploaded by URL", "GET by URL");
    // The signature covers the key.
    let tampered = get_url.replace("report%201.txt", "report%202.txt");
    if s.backend_name() != "gcs" {
        assert_ne!(tampered, get_url, "the key appears encoded in {get_url}");
        let (status, _) = http(
            PresignedRequest::new(PresignMethod::Get, tampered),
            Bytes::new(),
        )
        .await;
        assert!(
            (400..500).contains(&status),
            "tampered URL answered {status}"
        );
    }
}
