//! S3 multipart uploads.

#[allow(unused_imports)]
use super::*;

/// A multipart upload (CreateMultipartUpload, UploadPart per part, Complete or Abort). The
/// put's mode goes on CompleteMultipartUpload, so a conditional multipart put is as exact as a
/// single one.
pub(super) struct S3Upload {
    pub(super) storage: S3Storage,
    pub(super) path: ObjectPath,
    pub(super) options: PutOptions,
    pub(super) upload_id: String,
    pub(super) parts: Mutex<BTreeMap<i32, String>>,
    pub(super) size: AtomicU64,
}

impl Upload for S3Upload {
    fn put_part(&self, part: Part) -> BoxFuture<'_, Result<()>> {
        Box::pin(timed(self.storage.timeout, "S3 upload part", async move {
            let number = i32::try_from(part.index + 1)
                .ok()
                .filter(|n| *n <= 10_000)
                .ok_or_else(|| {
                    Error::invalid_input("S3 uploads have at most 10000 parts: raise the part size")
                })?;
            let len = part.bytes.len() as u64;
            let out = self
                .storage
                .client
                .upload_part()
                .bucket(&self.storage.bucket)
                .key(self.path.as_str())
                .upload_id(&self.upload_id)
                .part_number(number)
                .body(ByteStream::from(part.bytes))
                .send()
                .await
                .map_err(|e| s3_error(e, format!("uploading part {number} of {}", self.path)))?;
            let etag = out.e_tag().unwrap_or_default().to_owned();
            let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
            if parts.insert(number, etag).is_none() {
                self.size.fetch_add(len, Ordering::Relaxed);
            }
            Ok(())
        }))
    }

    fn complete(&self) -> BoxFuture<'_, Result<ObjectMeta>> {
        Box::pin(timed(
            self.storage.timeout,
            "S3 multipart complete",
            async move {
                use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
                let parts: Vec<CompletedPart> = self
                    .parts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
                    .collect();
                let mut req = self
                    .storage
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.storage.bucket)
                    .key(self.path.as_str())
                    .upload_id(&self.upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    );
                req = match &self.options.mode {
                    PutMode::Overwrite => req,
                    PutMode::Create => req.if_none_match("*"),
                    PutMode::IfMatch(v) => req.if_match(&v.0),
                };
                let path = &self.path;
                let out = req.send().await.map_err(|e| {
                    let e = s3_error(e, format!("completing the upload to {path}"));
                    self.options.mode.lost_race(e, path)
                })?;
                let size = self.size.load(Ordering::Relaxed);
                Ok(written(path, size, etag(out.e_tag()), &self.options))
            },
        ))
    }

    fn abort(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(timed(
            self.storage.timeout,
            "S3 multipart abort",
            async move {
                self.storage
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.storage.bucket)
                    .key(self.path.as_str())
                    .upload_id(&self.upload_id)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| s3_error(e, format!("aborting the upload to {}", self.path)))
            },
        ))
    }
}
