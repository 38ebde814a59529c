//! Writes each email as an `.eml` file.

use super::{BoxFuture, Email, Transport};
use crate::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

/// Writes every email as a MIME `.eml` file into a directory (created if missing), for
/// development: open them in any mail client. Files are written to a temporary name and renamed,
/// so a reader never sees half a message.
#[derive(Debug, Clone)]
pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    /// Writes into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Transport for FileTransport {
    fn name(&self) -> &'static str {
        "file"
    }

    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let bytes = super::to_mime(email)?;
            let dir = self.dir.clone();
            let name = format!(
                "{}-{:016x}.eml",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0),
                fastrand::u64(..)
            );
            let written = tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
                std::fs::create_dir_all(&dir)?;
                let tmp = dir.join(format!(".{name}.tmp"));
                std::fs::write(&tmp, &bytes)?;
                let path = dir.join(&name);
                std::fs::rename(&tmp, &path)?;
                Ok(path)
            })
            .await
            .map_err(|e| Error::new(ErrorKind::Backend, format!("file transport task: {e}")))?;
            let path = written.map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("writing into {}: {e}", self.dir.display()),
                )
                .with_source(e)
            })?;
            Ok(Some(path.display().to_string()))
        })
    }

    /// Creates the directory if needed and checks it is a writable directory.
    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let dir = self.dir.clone();
            let checked = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
                std::fs::create_dir_all(&dir)?;
                Ok(!std::fs::metadata(&dir)?.permissions().readonly())
            })
            .await
            .map_err(|e| Error::new(ErrorKind::Backend, format!("file transport task: {e}")))?;
            match checked {
                Ok(true) => Ok(()),
                Ok(false) => Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!("{} is read-only", self.dir.display()),
                )),
                Err(e) => Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("{}: {e}", self.dir.display()),
                )
                .with_source(e)),
            }
        })
    }
}
