//! In-memory object storage for tests and development.

use super::{
    Backend, BoxFuture, Capabilities, GetOptions, GetResult, ListResult, ObjectMeta, ObjectPath,
    PutOptions, Version, listed, one_level,
};
use crate::{Error, ErrorKind, Result};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Objects in a map, with the same semantics as the other backends (conditional puts included).
/// Clones share the objects.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    objects: Arc<Mutex<BTreeMap<ObjectPath, (Bytes, ObjectMeta)>>>,
    generation: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("objects", &self.map().len())
            .finish()
    }
}

fn not_found(path: &ObjectPath) -> Error {
    Error::new(ErrorKind::NotFound, format!("no object at {path}"))
}

impl MemoryStorage {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<ObjectPath, (Bytes, ObjectMeta)>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put_now(&self, path: &ObjectPath, bytes: Bytes, options: &PutOptions) -> Result<ObjectMeta> {
        let mut map = self.map();
        options
            .mode
            .check(map.get(path).map(|(_, m)| &m.version), path)?;
        let meta = ObjectMeta {
            path: path.clone(),
            size: bytes.len() as u64,
            last_modified: SystemTime::now(),
            version: Version(format!(
                "g{}",
                self.generation.fetch_add(1, Ordering::Relaxed) + 1
            )),
            content_type: options.content_type.clone(),
            cache_control: options.cache_control.clone(),
            content_disposition: options.content_disposition.clone(),
            metadata: options.metadata.clone(),
        };
        map.insert(path.clone(), (bytes, meta.clone()));
        Ok(meta)
    }
}

impl Backend for MemoryStorage {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            create_only: true,
            if_match: true,
            multipart: false,
            presign: None,
        }
    }

    fn put<'a>(
        &'a self,
        path: &'a ObjectPath,
        bytes: Bytes,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<ObjectMeta>> {
        Box::pin(std::future::ready(self.put_now(path, bytes, options)))
    }

    fn get<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetResult>> {
        let result = (|| {
            let (bytes, meta) = self
                .map()
                .get(path)
                .cloned()
                .ok_or_else(|| not_found(path))?;
            options.check_version(&meta.version, path)?;
            let range = match options.range {
                Some(r) => r.resolve(meta.size)?,
                None => 0..meta.size,
            };
            Ok(GetResult {
                bytes: bytes.slice(range.start as usize..range.end as usize),
                meta,
                range,
            })
        })();
        Box::pin(std::future::ready(result))
    }

    fn head<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<ObjectMeta>> {
        let result = self
            .map()
            .get(path)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| not_found(path));
        Box::pin(std::future::ready(result))
    }

    fn delete<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        self.map().remove(path);
        Box::pin(std::future::ready(Ok(())))
    }

    fn list<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        let all = self
            .map()
            .values()
            .filter(|(_, m)| listed(&m.path, prefix, start_after))
            .map(|(_, m)| m.clone())
            .collect();
        Box::pin(std::future::ready(Ok(all)))
    }

    fn list_with_delimiter<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<ListResult>> {
        Box::pin(async move { Ok(one_level(self.list(prefix, None).await?, prefix)) })
    }

    fn copy<'a>(&'a self, from: &'a ObjectPath, to: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        let result = (|| {
            let (bytes, meta) = self
                .map()
                .get(from)
                .cloned()
                .ok_or_else(|| not_found(from))?;
            let options = PutOptions::keeping(meta);
            self.put_now(to, bytes, &options).map(drop)
        })();
        Box::pin(std::future::ready(result))
    }
}
