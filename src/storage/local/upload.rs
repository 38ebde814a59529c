//! Local multipart uploads: parts written at their offsets into one temporary file.

use super::{LocalStorage, io_error};
use crate::Result;
use crate::storage::{BoxFuture, ObjectMeta, ObjectPath, Part, PutOptions, Upload};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A multipart upload into one temporary file beside the target: parts are written at their
/// offsets (in any order), `complete` commits it like a put.
pub(super) struct LocalUpload {
    pub(super) storage: LocalStorage,
    pub(super) path: ObjectPath,
    pub(super) options: PutOptions,
    pub(super) target: PathBuf,
    pub(super) tmp: PathBuf,
    pub(super) file: Arc<Mutex<std::fs::File>>,
}

impl Upload for LocalUpload {
    fn put_part(&self, part: Part) -> BoxFuture<'_, Result<()>> {
        let file = self.file.clone();
        Box::pin(self.storage.blocking(move |_, _| {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            file.seek(SeekFrom::Start(part.offset))
                .and_then(|_| file.write_all(&part.bytes))
                .map_err(|e| io_error(e, format!("writing part {}", part.index)))
        }))
    }

    fn complete(&self) -> BoxFuture<'_, Result<ObjectMeta>> {
        let (path, options) = (self.path.clone(), self.options.clone());
        let (target, tmp, file) = (self.target.clone(), self.tmp.clone(), self.file.clone());
        Box::pin(self.storage.blocking(move |s, abandoned| {
            let stat = file
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .metadata()
                .map_err(|e| io_error(e, format!("writing {path}")))?;
            s.commit(&path, &target, &tmp, &stat, &options, &abandoned)
        }))
    }

    fn abort(&self) -> BoxFuture<'_, Result<()>> {
        let tmp = self.tmp.clone();
        Box::pin(self.storage.blocking(move |_, _| {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }))
    }
}
