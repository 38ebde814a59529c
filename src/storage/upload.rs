//! Streaming reads and writes: [`GetStream`], [`Upload`] and the part-by-part driver behind
//! [`Storage::put_stream`](super::Storage::put_stream).

use super::{BoxFuture, ObjectMeta};
use crate::{Error, ErrorKind, Result};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, Stream, StreamExt};
use std::pin::Pin;

/// A stream of an object's bytes, chunk by chunk.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// An object being read as a stream: its metadata up front, then the bytes.
#[non_exhaustive]
pub struct GetStream {
    /// The object's metadata (its full size, not the range's).
    pub meta: ObjectMeta,
    /// Which bytes the stream yields.
    pub range: std::ops::Range<u64>,
    /// The bytes.
    pub stream: ByteStream,
}

impl std::fmt::Debug for GetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetStream")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl GetStream {
    /// Over `stream`.
    pub fn new<S>(meta: ObjectMeta, range: std::ops::Range<u64>, stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        Self {
            meta,
            range,
            stream: Box::pin(stream),
        }
    }

    /// A stream of one chunk.
    pub fn from_bytes(meta: ObjectMeta, range: std::ops::Range<u64>, bytes: Bytes) -> Self {
        Self {
            meta,
            range,
            stream: Box::pin(futures_util::stream::once(async move { Ok(bytes) })),
        }
    }

    /// Reads the rest of the stream into memory.
    ///
    /// # Errors
    /// The first chunk that failed.
    pub async fn bytes(mut self) -> Result<Bytes> {
        let mut out = BytesMut::with_capacity((self.range.end - self.range.start) as usize);
        while let Some(chunk) = self.stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }
}

/// One part of a multipart upload. Every part but the last is exactly the configured part
/// size, so `offset` is `index * part_size`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Part {
    /// 0-based position.
    pub index: u32,
    /// Where the part starts in the object.
    pub offset: u64,
    /// The bytes.
    pub bytes: Bytes,
    /// Whether this is the final part (its end is the object's size).
    pub last: bool,
}

/// A multipart upload a backend started for [`Storage::put_stream`](super::Storage::put_stream).
/// `put_part` may be called for several parts at once (up to
/// [`max_concurrency`](Self::max_concurrency)); then exactly one of `complete` or `abort`.
pub trait Upload: Send + Sync {
    /// How many parts may be in flight at once (1 for a backend that must receive them in
    /// order).
    fn max_concurrency(&self) -> usize {
        usize::MAX
    }
    /// Uploads one part.
    fn put_part(&self, part: Part) -> BoxFuture<'_, Result<()>>;
    /// Makes the object visible (all parts were put), honouring the put's mode.
    fn complete(&self) -> BoxFuture<'_, Result<ObjectMeta>>;
    /// Discards the parts.
    fn abort(&self) -> BoxFuture<'_, Result<()>>;
}

/// Reads up to `size` bytes (fewer only at the end of the stream).
async fn fill<S>(stream: &mut S, carry: &mut BytesMut, size: usize) -> Result<Bytes>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    while carry.len() < size {
        match stream.next().await {
            Some(chunk) => carry.extend_from_slice(&chunk?),
            None => break,
        }
    }
    let n = carry.len().min(size);
    Ok(carry.split_to(n).freeze())
}

/// What became of a streamed body.
pub(crate) enum Body {
    /// The whole body, for a single put: it fit in one part, or the backend has no multipart.
    Whole(Bytes),
    /// Parts were uploaded and completed.
    Uploaded(ObjectMeta),
}

/// Splits `stream` into `part_size` parts and uploads them, `concurrency` at a time, through
/// the upload `start` opens (only once the body is known to need more than one part; `None`:
/// the backend has none, and the body is collected whole). `put_part` retries each part as the
/// storage handle's policy says. A failure aborts the upload.
pub(crate) async fn drive<S, Start, PutPart>(
    mut stream: S,
    part_size: usize,
    concurrency: usize,
    start: Start,
    put_part: PutPart,
) -> Result<Body>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
    Start: AsyncFnOnce() -> Result<Option<Box<dyn Upload>>>,
    PutPart: AsyncFn(&dyn Upload, Part) -> Result<()>,
{
    let mut carry = BytesMut::new();
    let first = fill(&mut stream, &mut carry, part_size).await?;
    let mut next = fill(&mut stream, &mut carry, part_size).await?;
    if next.is_empty() {
        return Ok(Body::Whole(first));
    }
    let Some(upload) = start().await? else {
        let mut all = BytesMut::from(first);
        all.extend_from_slice(&next);
        all.extend_from_slice(&carry);
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk?);
        }
        return Ok(Body::Whole(all.freeze()));
    };
    let limit = concurrency.clamp(1, upload.max_concurrency().max(1));
    let result = async {
        let mut in_flight = FuturesUnordered::new();
        let (mut index, mut offset, mut current) = (0u32, 0u64, first);
        loop {
            let last = next.is_empty();
            let part = Part {
                index,
                offset,
                bytes: current,
                last,
            };
            offset += part.bytes.len() as u64;
            index = index
                .checked_add(1)
                .ok_or_else(|| Error::invalid_input("body has more parts than a u32 can count"))?;
            while in_flight.len() >= limit {
                if let Some(done) = in_flight.next().await {
                    done?;
                }
            }
            in_flight.push(put_part(upload.as_ref(), part));
            if last {
                break;
            }
            // Read the next part while the others upload.
            current = next;
            next = tokio::select! {
                biased;
                Some(Err(e)) = in_flight.next() => return Err(e),
                read = fill(&mut stream, &mut carry, part_size) => read?,
            };
        }
        while let Some(done) = in_flight.next().await {
            done?;
        }
        upload.complete().await
    }
    .await;
    match result {
        Ok(meta) => Ok(Body::Uploaded(meta)),
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                tracing::warn!(error = %abort, "aborting a failed multipart upload");
            }
            Err(e)
        }
    }
}

/// An `AsyncRead` as a stream of `chunk`-sized reads.
pub(crate) fn read_stream<R>(reader: R, chunk: usize) -> impl Stream<Item = Result<Bytes>> + Send
where
    R: tokio::io::AsyncRead + Send + Unpin,
{
    futures_util::stream::try_unfold(reader, move |mut reader| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = BytesMut::with_capacity(chunk);
        let n = reader.read_buf(&mut buf).await.map_err(|e| {
            Error::new(ErrorKind::Backend, format!("reading the body: {e}")).with_source(e)
        })?;
        Ok((n > 0).then(|| (buf.freeze(), reader)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Recorder {
        parts: Mutex<Vec<(u32, u64, usize, bool)>>,
        completed: Mutex<bool>,
        aborted: Mutex<bool>,
        fail_at: Option<u32>,
    }

    impl Upload for Arc<Recorder> {
        fn put_part(&self, part: Part) -> BoxFuture<'_, Result<()>> {
            Box::pin(async move {
                if Some(part.index) == self.fail_at {
                    return Err(Error::new(ErrorKind::Unavailable, "part failed"));
                }
                let seen = (part.index, part.offset, part.bytes.len(), part.last);
                self.parts.lock().unwrap().push(seen);
                Ok(())
            })
        }
        fn complete(&self) -> BoxFuture<'_, Result<ObjectMeta>> {
            *self.completed.lock().unwrap() = true;
            Box::pin(async { Err(Error::new(ErrorKind::Backend, "no meta in this test")) })
        }
        fn abort(&self) -> BoxFuture<'_, Result<()>> {
            *self.aborted.lock().unwrap() = true;
            Box::pin(async { Ok(()) })
        }
    }

    fn chunks(total: usize, chunk: usize) -> impl Stream<Item = Result<Bytes>> + Unpin {
        let v: Vec<Result<Bytes>> = (0..total)
            .step_by(chunk)
            .map(|start| Ok(Bytes::from(vec![7u8; chunk.min(total - start)])))
            .collect();
        futures_util::stream::iter(v)
    }

    async fn run(recorder: &Arc<Recorder>, total: usize, chunk: usize) -> Result<Body> {
        let r = recorder.clone();
        drive(
            chunks(total, chunk),
            10,
            2,
            async move || -> Result<Option<Box<dyn Upload>>> {
                Ok(Some(Box::new(r) as Box<dyn Upload>))
            },
            async |u: &dyn Upload, p| u.put_part(p).await,
        )
        .await
    }

    #[tokio::test]
    async fn small_bodies_are_one_put_and_large_ones_exact_parts() {
        let r = Arc::new(Recorder::default());
        let body = run(&r, 10, 3).await.unwrap();
        assert!(matches!(body, Body::Whole(b) if b.len() == 10));
        assert!(r.parts.lock().unwrap().is_empty(), "no upload started");

        let _ = run(&r, 25, 4).await;
        let mut parts = r.parts.lock().unwrap().clone();
        parts.sort();
        assert_eq!(
            parts,
            [(0, 0, 10, false), (1, 10, 10, false), (2, 20, 5, true)]
        );
        assert!(*r.completed.lock().unwrap());
    }

    #[tokio::test]
    async fn without_multipart_the_body_is_collected_in_order() {
        let body: Vec<Result<Bytes>> = (0u8..50).map(|i| Ok(Bytes::from(vec![i; 3]))).collect();
        let got = drive(
            futures_util::stream::iter(body),
            10,
            2,
            async || Ok(None),
            async |u: &dyn Upload, p| u.put_part(p).await,
        )
        .await
        .unwrap();
        let want: Vec<u8> = (0u8..50).flat_map(|i| [i; 3]).collect();
        assert!(matches!(got, Body::Whole(b) if b[..] == want[..]));
    }

    #[tokio::test]
    async fn a_failed_part_aborts() {
        let r = Arc::new(Recorder {
            fail_at: Some(1),
            ..Recorder::default()
        });
        let e = run(&r, 40, 10).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(*r.aborted.lock().unwrap());
        assert!(!*r.completed.lock().unwrap());
    }
}
