//! Resumable GCS uploads: parts in order, the last one finalizes.

#[allow(unused_imports)]
use super::*;

/// A resumable upload session: parts go in order (GCS appends), the last one finalizes.
pub(super) struct GcsUpload {
    pub(super) session: ResumableUploadClient,
    pub(super) path: ObjectPath,
    pub(super) mode: PutMode,
    pub(super) done: Mutex<Option<Object>>,
    pub(super) timeout: Duration,
}

impl Upload for GcsUpload {
    fn max_concurrency(&self) -> usize {
        1
    }

    fn put_part(&self, part: Part) -> BoxFuture<'_, Result<()>> {
        let what = format!("GCS upload part {}", part.index);
        Box::pin(crate::error::bounded(self.timeout, || what, async move {
            let len = part.bytes.len() as u64;
            let end = part.offset + len;
            let total = part.last.then_some(end);
            let size = if len == 0 {
                ChunkSize::new(end, end.saturating_sub(1), total)
            } else {
                ChunkSize::new(part.offset, end - 1, total)
            };
            let path = &self.path;
            let status = self
                .session
                .upload_multiple_chunk(part.bytes, &size)
                .await
                .map_err(|e| {
                    let e = gcs_error(e, format!("uploading part {} of {path}", part.index));
                    self.mode.lost_race(e, path)
                })?;
            if let UploadStatus::Ok(o) = status {
                *self.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(o);
            }
            Ok(())
        }))
    }

    fn complete(&self) -> BoxFuture<'_, Result<ObjectMeta>> {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            let o = done.ok_or_else(|| {
                Error::new(
                    ErrorKind::Backend,
                    format!("the upload to {} did not finalize", self.path),
                )
            })?;
            meta_or_error(o, &self.path)
        })
    }

    fn abort(&self) -> BoxFuture<'_, Result<()>> {
        let session = self.session.clone();
        let what = format!("cancelling the upload to {}", self.path);
        let label = what.clone();
        Box::pin(crate::error::bounded(self.timeout, || label, async move {
            session.cancel().await.map_err(|e| gcs_error(e, what))
        }))
    }
}
