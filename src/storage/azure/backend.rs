//! `Backend` for Azure Blob Storage: the portable operations on the SDK's calls.

use super::*;

impl Backend for AzureStorage {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            create_only: true,
            if_match: true,
            multipart: true,
            presign: self.inner.presign_key.as_ref().map(|_| PRESIGN_MAX),
        }
    }

    fn put<'a>(
        &'a self,
        path: &'a ObjectPath,
        bytes: Bytes,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<ObjectMeta>> {
        Box::pin(timed(self.inner.timeout, "Azure put", async move {
            check_metadata(options)?;
            let size = bytes.len() as u64;
            let (if_match, if_none_match) = conditions(&options.mode);
            let upload = BlobClientUploadOptions {
                blob_content_type: options.content_type.clone(),
                blob_cache_control: options.cache_control.clone(),
                blob_content_disposition: options.content_disposition.clone(),
                metadata: (!options.metadata.is_empty())
                    .then(|| options.metadata.clone().into_iter().collect()),
                if_match,
                if_none_match,
                partition_size: NonZero::new(SINGLE_PUT_LIMIT),
                ..Default::default()
            };
            let out = self
                .blob(path)
                .upload(RequestContent::from(bytes.to_vec()), Some(upload))
                .await
                .map_err(|e| {
                    options
                        .mode
                        .lost_race(azure_error(e, format!("putting {path}")), path)
                })?;
            Ok(written(path, size, version(out.etag), options))
        }))
    }

    fn get<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetResult>> {
        Box::pin(timed(self.inner.timeout, "Azure get", async move {
            let (meta, range, body) = self.open(path, options).await?;
            let bytes = body
                .collect()
                .await
                .map_err(|e| azure_error(e, format!("reading {path}")))?;
            Ok(GetResult { meta, bytes, range })
        }))
    }

    fn get_stream<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetStream>> {
        Box::pin(timed(self.inner.timeout, "Azure get", async move {
            let (meta, range, body) = self.open(path, options).await?;
            let what = format!("reading {path}");
            let stream = body.map_err(move |e| azure_error(e, what.clone()));
            Ok(GetStream::new(meta, range, stream))
        }))
    }

    fn head<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<ObjectMeta>> {
        Box::pin(timed(
            self.inner.timeout,
            "Azure head",
            self.properties(path),
        ))
    }

    fn delete<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed(self.inner.timeout, "Azure delete", async move {
            match self.blob(path).delete(None).await {
                Ok(_) => Ok(()),
                Err(e) if e.http_status().map(u16::from) == Some(404) => Ok(()),
                Err(e) => Err(azure_error(e, format!("deleting {path}"))),
            }
        }))
    }

    fn list<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        self.list_pages(prefix, start_after)
    }

    fn list_stream(&self, prefix: Option<ObjectPath>) -> BoxStream<'_, Result<ObjectMeta>> {
        self.stream_pages(prefix)
    }

    fn list_with_delimiter<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<ListResult>> {
        Box::pin(async move { Ok(one_level(self.list(prefix, None).await?, prefix)) })
    }

    fn copy<'a>(&'a self, from: &'a ObjectPath, to: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed(self.inner.timeout, "Azure copy", async move {
            let mut source = self.blob_url(from);
            if let Some(q) = &self.inner.query {
                source = format!("{source}?{}", q.query()?);
            }
            let target = self.blob(to);
            let started = target
                .start_copy_from_url(source, None)
                .await
                .map_err(|e| azure_error(e, format!("copying {from}")))?;
            let mut status = started
                .copy_status()
                .map_err(|e| azure_error(e, format!("copying {from}")))?;
            // Copies within an account are usually done at once; larger ones are polled.
            let mut wait = Duration::from_millis(50);
            while status == Some(CopyStatus::Pending) {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
                let props = target
                    .get_properties(None)
                    .await
                    .map_err(|e| azure_error(e, format!("copying {from}")))?;
                status = props
                    .copy_status()
                    .map_err(|e| azure_error(e, format!("copying {from}")))?;
            }
            match status {
                None | Some(CopyStatus::Success) => Ok(()),
                Some(other) => Err(Error::new(
                    ErrorKind::Backend,
                    format!("copying {from} to {to} ended {other:?}"),
                )
                .with_backend("azure")),
            }
        }))
    }

    fn start_upload<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<Option<Box<dyn Upload>>>> {
        if let Err(e) = check_metadata(options) {
            return Box::pin(std::future::ready(Err(e)));
        }
        Box::pin(std::future::ready(Ok(Some(Box::new(AzureUpload {
            blob: self.blob(path),
            path: path.clone(),
            options: options.clone(),
            // A random prefix keeps this upload's block ids distinct from another's; Azure still
            // drops all uncommitted blocks of the blob when either one commits.
            id: fastrand::u64(..),
            blocks: Mutex::default(),
            timeout: self.inner.timeout,
        }) as Box<dyn Upload>))))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(timed(self.inner.timeout, "Azure ping", async move {
            self.inner
                .client
                .get_properties(None)
                .await
                .map(drop)
                .map_err(|e| azure_error(e, format!("container {}", self.inner.container)))
        }))
    }

    fn presign<'a>(
        &'a self,
        method: PresignMethod,
        path: &'a ObjectPath,
        expires: Duration,
    ) -> BoxFuture<'a, Result<PresignedRequest>> {
        Box::pin(async move {
            let Some(key) = &self.inner.presign_key else {
                return Err(Error::unsupported(
                    "azure",
                    "presign",
                    "presigned URLs need the account key (user delegation SAS is not implemented)",
                ));
            };
            let permissions = match method {
                PresignMethod::Get => "r",
                PresignMethod::Put => "cw",
            };
            let sas = blob_sas(
                &self.inner.account,
                &self.inner.container,
                path.as_str(),
                permissions,
                key,
                SystemTime::now() + expires,
            )?;
            let mut request =
                PresignedRequest::new(method, format!("{}?{sas}", self.blob_url(path)));
            if method == PresignMethod::Put {
                // Put Blob needs the blob type; the signature does not cover it.
                request.headers = vec![("x-ms-blob-type".to_owned(), "BlockBlob".to_owned())];
            }
            Ok(request)
        })
    }
}
