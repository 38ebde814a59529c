//! Streaming uploads as staged blocks committed in one list.

use super::*;

/// A block-blob upload: each part is a staged block, `complete` commits the list.
pub(super) struct AzureUpload {
    pub(super) blob: BlobClient,
    pub(super) path: ObjectPath,
    pub(super) options: PutOptions,
    pub(super) id: u64,
    pub(super) blocks: Mutex<BTreeMap<u32, Vec<u8>>>,
    pub(super) timeout: Duration,
}

impl Upload for AzureUpload {
    fn put_part(&self, part: Part) -> BoxFuture<'_, Result<()>> {
        let what = format!("Azure stage block {}", part.index);
        Box::pin(crate::error::bounded(self.timeout, || what, async move {
            let block_id = format!("{:016x}-{:08}", self.id, part.index).into_bytes();
            let len = part.bytes.len() as u64;
            self.blob
                .block_blob_client()
                .stage_block(
                    &block_id,
                    len,
                    RequestContent::from(part.bytes.to_vec()),
                    None,
                )
                .await
                .map_err(|e| {
                    azure_error(e, format!("staging block {} of {}", part.index, self.path))
                })?;
            self.blocks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(part.index, block_id);
            Ok(())
        }))
    }

    fn complete(&self) -> BoxFuture<'_, Result<ObjectMeta>> {
        let what = "Azure commit block list".to_owned();
        Box::pin(crate::error::bounded(self.timeout, || what, async move {
            let ids: Vec<Vec<u8>> = self
                .blocks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect();
            let list = BlockLookupList {
                latest: Some(ids),
                ..Default::default()
            };
            let path = &self.path;
            let content = list
                .try_into()
                .map_err(|e| azure_error(e, format!("committing {path}")))?;
            let (if_match, if_none_match) = conditions(&self.options.mode);
            let options = BlockBlobClientCommitBlockListOptions {
                blob_content_type: self.options.content_type.clone(),
                blob_cache_control: self.options.cache_control.clone(),
                blob_content_disposition: self.options.content_disposition.clone(),
                metadata: (!self.options.metadata.is_empty())
                    .then(|| self.options.metadata.clone().into_iter().collect()),
                if_match,
                if_none_match,
                ..Default::default()
            };
            let out = self
                .blob
                .block_blob_client()
                .commit_block_list(content, Some(options))
                .await
                .map_err(|e| {
                    let e = azure_error(e, format!("committing {path}"));
                    self.options.mode.lost_race(e, path)
                })?;
            let etag = out
                .etag()
                .map_err(|e| azure_error(e, format!("committing {path}")))?;
            // Size: what the parts added up to is known to the driver only; read it back.
            let mut meta = written(path, 0, version(etag), &self.options);
            if let Ok(props) = self.blob.get_properties(None).await
                && let Ok(Some(len)) = props.content_length()
            {
                meta.size = len;
            }
            Ok(meta)
        }))
    }

    fn abort(&self) -> BoxFuture<'_, Result<()>> {
        // Uncommitted blocks are garbage-collected by the service (after a week).
        Box::pin(std::future::ready(Ok(())))
    }
}
