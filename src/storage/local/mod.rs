//! Objects as files under a root directory.

use super::{
    Backend, BoxFuture, Capabilities, GetOptions, GetResult, GetStream, ListResult, ObjectMeta,
    ObjectPath, PutMode, PutOptions, Upload, Version, listed, one_level,
};
use crate::{Error, ErrorKind, Result};
use bytes::Bytes;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// corekit's own directory under the root: metadata sidecars.
const RESERVED: &str = ".corekit";
/// Marks temporary files, written beside their target and renamed over it.
mod sidecar;
mod sweep;
mod upload;

use upload::LocalUpload;

const TEMP_MARK: &str = ".corekit-tmp-";
const STRIPES: usize = 64;
/// A file name is at most 255 bytes; a key's sidecar adds `.corekit-tmp-meta.json` to its last
/// segment.
const MAX_LAST_SEGMENT: usize = 255 - SIDECAR_SUFFIX.len();
/// What a key's sidecar adds to its name.
const SIDECAR_SUFFIX: &str = ".corekit-tmp-meta.json";

/// Objects as files under a root directory.
///
/// - Writes go to a temporary file beside the target (`.corekit-tmp-<random>`, never listed,
///   as long whatever the key) and are renamed into place, so a reader never sees a partial object, even if the
///   writer crashes (no fsync: a power loss can lose the newest writes, as with object_store's
///   local store).
/// - Create-only puts are a hard link (atomic: of 50 concurrent writers exactly one wins);
///   compare-and-swap and every other write to a key take one of 64 in-process locks, so
///   conditional writes are exact within one process (not across processes sharing the
///   directory).
/// - Content type, cache control, disposition and user metadata live in a JSON sidecar under
///   `<root>/.corekit/meta`; `head` and `get` return them, `list` does not read them.
/// - The version token is the file's size, modification time in nanoseconds and (on Unix) inode:
///   every put renames a new file into place, so two same-size writes within one tick of a
///   coarse clock still get different versions.
/// - A key whose first segment is `.corekit`, or with a segment containing `.corekit-tmp-`, is
///   refused, and so is any path through a linked directory and any read of a link: nothing
///   outside the root is reachable. A write to a key that is a link replaces the link itself
///   (rename semantics), never its target.
/// - Where a file system differs from an object store: a key and a key under it (`a` and
///   `a/b`) cannot both exist (the second write is a [`Conflict`](ErrorKind::Conflict));
///   a key's last segment is at most 233 bytes and the others 255 (file-name limits, less the
///   metadata sidecar's suffix), refused as `InvalidInput` before any I/O; deleting a key that
///   only has keys under it is a no-op, as deleting any absent key.
#[derive(Clone)]
pub struct LocalStorage {
    root: Arc<PathBuf>,
    locks: Arc<[Mutex<()>; STRIPES]>,
}

impl std::fmt::Debug for LocalStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStorage")
            .field("root", &self.root)
            .finish()
    }
}

/// Runs `read` until it sees an object whose metadata it could pair with its bytes (see
/// `LocalStorage::meta_from`); writers replacing the object at every turn make it give up with
/// a retryable `Conflict`.
fn settled<T>(path: &ObjectPath, mut read: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    for _ in 0..32 {
        if let Some(found) = read()? {
            return Ok(found);
        }
    }
    Err(Error::new(
        ErrorKind::Conflict,
        format!("{path} was replaced 32 times while being read"),
    )
    .with_retryable(true))
}

/// Set when the caller stopped waiting for a blocking task (its future was dropped: a timeout,
/// a cancelled task). Writes check it under the key's lock before changing anything, so a write
/// the caller gave up on never lands after the caller (or its retry) has moved on.
#[derive(Clone, Default)]
struct Abandoned(Arc<std::sync::atomic::AtomicBool>);

impl Abandoned {
    fn check(&self, path: &ObjectPath) -> Result<()> {
        if self.0.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("{path}: the caller stopped waiting; nothing was changed"),
            ));
        }
        Ok(())
    }
}

/// Marks the task abandoned when dropped before it was disarmed.
struct AbandonOnDrop(Option<Abandoned>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            a.0.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

fn io_error(e: std::io::Error, what: String) -> Error {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        std::io::ErrorKind::NotADirectory | std::io::ErrorKind::IsADirectory => {
            return Error::new(
                ErrorKind::Conflict,
                format!(
                    "{what}: a key and a key under it as a prefix (`a` and `a/b`) cannot both \
                     exist in local storage (a file cannot also be a directory)"
                ),
            )
            .with_source(e);
        }
        _ => ErrorKind::Backend,
    };
    Error::new(kind, format!("{what}: {e}")).with_source(e)
}

impl LocalStorage {
    /// Objects under `root` (created if missing). A background thread then removes temporary
    /// files older than an hour (left by writers that died mid-write; see
    /// [`remove_stale_temp_files`](Self::remove_stale_temp_files)).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root: PathBuf = root.into();
        for dir in [
            root.join(RESERVED).join("tmp"),
            root.join(RESERVED).join("meta"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| io_error(e, format!("creating {}", dir.display())))?;
        }
        let storage = Self {
            root: Arc::new(root),
            locks: Arc::new(std::array::from_fn(|_| Mutex::new(()))),
        };
        let sweeper = storage.clone();
        let _ = std::thread::Builder::new()
            .name("corekit-local-sweep".into())
            .spawn(move || sweeper.remove_stale_temp_files(Duration::from_secs(3600)));
        Ok(storage)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn stripe(path: &ObjectPath) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        path.hash(&mut h);
        (h.finish() as usize) % STRIPES
    }

    fn lock(&self, path: &ObjectPath) -> std::sync::MutexGuard<'_, ()> {
        self.lock_stripe(Self::stripe(path))
    }

    fn lock_stripe(&self, i: usize) -> std::sync::MutexGuard<'_, ()> {
        self.locks[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The locks of two keys, in stripe order (one lock when they share a stripe).
    fn lock_both(
        &self,
        a: &ObjectPath,
        b: &ObjectPath,
    ) -> (
        std::sync::MutexGuard<'_, ()>,
        Option<std::sync::MutexGuard<'_, ()>>,
    ) {
        let (i, j) = (Self::stripe(a), Self::stripe(b));
        let first = self.lock_stripe(i.min(j));
        let second = (i != j).then(|| self.lock_stripe(i.max(j)));
        (first, second)
    }

    /// The file for `path`, after checking nothing on the way is a symlink.
    fn file(&self, path: &ObjectPath) -> Result<PathBuf> {
        self.checked(path, true)
    }

    /// As [`file`](Self::file) for a write, which checks the directories only: a write renames
    /// a new file over the last segment, which replaces a link there instead of following it.
    fn file_to_write(&self, path: &ObjectPath) -> Result<PathBuf> {
        self.checked(path, false)
    }

    fn checked(&self, path: &ObjectPath, last_too: bool) -> Result<PathBuf> {
        if path.as_str().split('/').next() == Some(RESERVED) || path.as_str().contains(TEMP_MARK) {
            return Err(Error::invalid_input(format!(
                "object key {path}: '{RESERVED}/' and '{TEMP_MARK}' are reserved by the local backend"
            )));
        }
        let segments = path.as_str().split('/').count();
        for (i, segment) in path.as_str().split('/').enumerate() {
            let max = if i + 1 == segments {
                MAX_LAST_SEGMENT
            } else {
                255
            };
            if segment.len() > max {
                return Err(Error::invalid_input(format!(
                    "object key {path}: segment of {} bytes; the local backend takes at most \
                     {max} (file-name limit)",
                    segment.len()
                )));
            }
        }
        let mut at = self.root.to_path_buf();
        for (i, segment) in path.as_str().split('/').enumerate() {
            at.push(segment);
            if i + 1 == segments && !last_too {
                break;
            }
            if let Ok(m) = std::fs::symlink_metadata(&at)
                && m.file_type().is_symlink()
            {
                return Err(Error::invalid_input(format!(
                    "object key {path}: {} is a symbolic link; refusing to leave the root",
                    at.display()
                )));
            }
        }
        Ok(at)
    }

    /// `<root>/.corekit/meta/<key>.corekit-tmp-meta.json`: keys never contain the mark, so a
    /// sidecar's name can never be a directory another key's sidecar needs (`a` and `a.json/x`).
    fn sidecar_file(&self, path: &ObjectPath) -> PathBuf {
        self.root
            .join(RESERVED)
            .join("meta")
            .join(format!("{}{SIDECAR_SUFFIX}", path.as_str()))
    }

    /// A temporary file beside `target` (same directory: the rename stays within it), named
    /// independently of the key so that a long key name does not outgrow the file-name limit.
    fn temp(target: &Path) -> PathBuf {
        target.with_file_name(format!("{TEMP_MARK}{:016x}", fastrand::u64(..)))
    }

    /// Metadata from a file's `stat` (no sidecar).
    fn stat_meta(path: &ObjectPath, m: &std::fs::Metadata) -> ObjectMeta {
        let modified = m.modified().unwrap_or(UNIX_EPOCH);
        let nanos = modified
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // Every put renames a fresh temporary file into place, so the inode changes with each
        // write even when two same-size writes land in one tick of a coarse mtime clock.
        #[cfg(unix)]
        let version = {
            use std::os::unix::fs::MetadataExt;
            format!("{}-{nanos}-{}", m.len(), m.ino())
        };
        #[cfg(not(unix))]
        let version = format!("{}-{nanos}", m.len());
        ObjectMeta {
            path: path.clone(),
            size: m.len(),
            last_modified: modified,
            version: Version(version),
            content_type: None,
            cache_control: None,
            content_disposition: None,
            metadata: std::collections::BTreeMap::new(),
        }
    }

    fn meta(&self, path: &ObjectPath, file: &Path, with_sidecar: bool) -> Result<ObjectMeta> {
        settled(path, || {
            let m = std::fs::metadata(file).map_err(|e| io_error(e, format!("{path}")))?;
            self.meta_from(path, file, &m, with_sidecar)
        })
    }

    /// The object's metadata from its `stat` (`m`) and, `with_sidecar`, its sidecar entry;
    /// `None` when the entry is missing because writers replaced the object since `m` was
    /// taken (they prune entries of versions no longer in place): read again.
    fn meta_from(
        &self,
        path: &ObjectPath,
        file: &Path,
        m: &std::fs::Metadata,
        with_sidecar: bool,
    ) -> Result<Option<ObjectMeta>> {
        if !m.is_file() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no object at {path}"),
            ));
        }
        let mut meta = Self::stat_meta(path, m);
        if !with_sidecar {
            return Ok(Some(meta));
        }
        match sidecar::find(&self.sidecar_file(path), &meta.version) {
            Some(sidecar) => {
                meta.content_type = sidecar.content_type;
                meta.cache_control = sidecar.cache_control;
                meta.content_disposition = sidecar.content_disposition;
                meta.metadata = sidecar.metadata;
                Ok(Some(meta))
            }
            // No entry: this version has no metadata, unless it is no longer the one in place.
            None => {
                let now = std::fs::metadata(file)
                    .ok()
                    .filter(std::fs::Metadata::is_file);
                let same = now.is_some_and(|n| Self::stat_meta(path, &n).version == meta.version);
                Ok(same.then_some(meta))
            }
        }
    }

    fn put_blocking(
        &self,
        path: &ObjectPath,
        bytes: &[u8],
        options: &PutOptions,
        abandoned: &Abandoned,
    ) -> Result<ObjectMeta> {
        let (file, tmp, mut f) = self.new_temp(path)?;
        let written = f.write_all(bytes).and_then(|()| f.metadata());
        drop(f);
        match written {
            Ok(stat) => self.commit(path, &file, &tmp, &stat, options, abandoned),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(io_error(e, format!("writing {path}")))
            }
        }
    }

    /// The file for `path`, and a fresh temporary file beside it, open for writing (parent
    /// directories are created on the first miss, not checked on every put).
    fn new_temp(&self, path: &ObjectPath) -> Result<(PathBuf, PathBuf, std::fs::File)> {
        let file = self.file_to_write(path)?;
        let tmp = Self::temp(&file);
        let created = match std::fs::File::create(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io_error(e, format!("{path}")))?;
                }
                std::fs::File::create(&tmp)
            }
            other => other,
        };
        let f = created.map_err(|e| io_error(e, format!("writing {path}")))?;
        Ok((file, tmp, f))
    }

    /// Moves the complete temporary file `tmp` (whose `stat` is `written`: renames and links
    /// keep it) into place as `mode` says; it is gone after.
    fn commit(
        &self,
        path: &ObjectPath,
        file: &Path,
        tmp: &Path,
        written: &std::fs::Metadata,
        options: &PutOptions,
        abandoned: &Abandoned,
    ) -> Result<ObjectMeta> {
        let guard = self.lock(path);
        let mut meta = Self::stat_meta(path, written);
        let place = || {
            abandoned.check(path)?;
            match &options.mode {
                PutMode::Overwrite => {
                    std::fs::rename(tmp, file).map_err(|e| io_error(e, format!("writing {path}")))
                }
                PutMode::IfMatch(_) => {
                    let current = self.meta(path, file, false).map(|m| m.version).ok();
                    options.mode.check(current.as_ref(), path).and_then(|()| {
                        std::fs::rename(tmp, file)
                            .map_err(|e| io_error(e, format!("writing {path}")))
                    })
                }
                // A hard link fails if the target exists: atomic create-only.
                PutMode::Create => std::fs::hard_link(tmp, file).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Error::new(ErrorKind::AlreadyExists, format!("{path} already exists"))
                    } else {
                        io_error(e, format!("writing {path}"))
                    }
                }),
            }
        };
        // With metadata, its entry is in the sidecar before the bytes are in place (both under
        // the sidecar directory's lock, which other processes take too): see `sidecar`.
        let placed = match sidecar::Entry::of(options, &meta.version) {
            None => place(),
            Some(entry) => {
                let sidecar_file = self.sidecar_file(path);
                let mut outcome = Ok(());
                let locked = sidecar::locked(&sidecar_file, || {
                    let live = self.meta(path, file, false).map(|m| m.version).ok();
                    sidecar::add(&sidecar_file, entry, live.as_ref())?;
                    outcome = place();
                    Ok(())
                });
                locked
                    .map_err(|e| io_error(e, format!("writing {path} metadata")))
                    .and(outcome)
            }
        };
        if placed.is_err() || options.mode == PutMode::Create {
            let _ = std::fs::remove_file(tmp);
        }
        placed?;
        drop(guard);
        meta.content_type = options.content_type.clone();
        meta.cache_control = options.cache_control.clone();
        meta.content_disposition = options.content_disposition.clone();
        meta.metadata = options.metadata.clone();
        Ok(meta)
    }

    /// Opens the object, then takes its metadata from the open file: a concurrent rename cannot
    /// pair one version's bytes with another's metadata. Positioned at the range's start.
    fn open(
        &self,
        path: &ObjectPath,
        options: &GetOptions,
    ) -> Result<(ObjectMeta, std::ops::Range<u64>, std::fs::File)> {
        let file = self.file(path)?;
        let (meta, mut f) = settled(path, || {
            let f = std::fs::File::open(&file).map_err(|e| io_error(e, format!("{path}")))?;
            let m = f.metadata().map_err(|e| io_error(e, format!("{path}")))?;
            Ok(self.meta_from(path, &file, &m, true)?.map(|meta| (meta, f)))
        })?;
        options.check_version(&meta.version, path)?;
        let range = match options.range {
            Some(r) => r.resolve(meta.size)?,
            None => 0..meta.size,
        };
        f.seek(SeekFrom::Start(range.start))
            .map_err(|e| io_error(e, format!("reading {path}")))?;
        Ok((meta, range, f))
    }

    fn get_blocking(&self, path: &ObjectPath, options: &GetOptions) -> Result<GetResult> {
        let (meta, range, mut f) = self.open(path, options)?;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        f.read_exact(&mut buf)
            .map_err(|e| io_error(e, format!("reading {path}")))?;
        Ok(GetResult {
            meta,
            bytes: Bytes::from(buf),
            range,
        })
    }

    fn walk(&self, dir: &Path, prefix: &str, out: &mut Vec<(ObjectPath, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if (prefix.is_empty() && name == RESERVED) || name.contains(TEMP_MARK) {
                continue;
            }
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                self.walk(&entry.path(), &key, out);
            } else if kind.is_file()
                && let Ok(p) = ObjectPath::new(&key)
            {
                out.push((p, entry.path()));
            }
        }
    }

    fn list_blocking(
        &self,
        prefix: Option<&ObjectPath>,
        after: Option<&ObjectPath>,
    ) -> Result<Vec<ObjectMeta>> {
        let (start, base) = match prefix {
            Some(p) => (self.file(p)?, p.as_str().to_owned()),
            None => (self.root.to_path_buf(), String::new()),
        };
        let mut found = Vec::new();
        self.walk(&start, &base, &mut found);
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found
            .into_iter()
            .filter(|(p, _)| listed(p, prefix, after))
            .filter_map(|(p, file)| self.meta(&p, &file, false).ok())
            .collect())
    }

    fn delete_blocking(&self, path: &ObjectPath, abandoned: &Abandoned) -> Result<()> {
        let file = self.file(path)?;
        let _guard = self.lock(path);
        abandoned.check(path)?;
        self.remove_locked(path, &file)
    }

    /// Removes the object, its sidecar and the directories it leaves empty; the caller holds
    /// the key's lock.
    fn remove_locked(&self, path: &ObjectPath, file: &Path) -> Result<()> {
        match std::fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Only keys under it exist: no object here, and deleting nothing succeeds.
            Err(_) if file.is_dir() => return Ok(()),
            Err(e) => return Err(io_error(e, format!("deleting {path}"))),
        }
        let _ = std::fs::remove_file(self.sidecar_file(path));
        // Empty "directories" go too, so they vanish from delimiter listings.
        let mut dir = file.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == *self.root || std::fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(LocalStorage, Abandoned) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        let abandoned = Abandoned::default();
        let mut guard = AbandonOnDrop(Some(abandoned.clone()));
        let done = tokio::task::spawn_blocking(move || f(this, abandoned)).await;
        guard.0 = None;
        done.map_err(|e| Error::new(ErrorKind::Backend, format!("local storage task: {e}")))?
    }
}

impl Backend for LocalStorage {
    fn name(&self) -> &'static str {
        "local"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            create_only: true,
            if_match: true,
            multipart: true,
            presign: None,
        }
    }

    fn put<'a>(
        &'a self,
        path: &'a ObjectPath,
        bytes: Bytes,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<ObjectMeta>> {
        let (path, options) = (path.clone(), options.clone());
        Box::pin(self.blocking(move |s, a| s.put_blocking(&path, &bytes, &options, &a)))
    }

    fn get<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetResult>> {
        let (path, options) = (path.clone(), options.clone());
        Box::pin(self.blocking(move |s, _| s.get_blocking(&path, &options)))
    }

    fn get_stream<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetStream>> {
        let (path, options) = (path.clone(), options.clone());
        Box::pin(async move {
            let (meta, range, file) = self.blocking(move |s, _| s.open(&path, &options)).await?;
            use tokio::io::AsyncReadExt;
            let reader = tokio::fs::File::from_std(file).take(range.end - range.start);
            let stream = super::upload::read_stream(reader, 64 * 1024);
            Ok(GetStream::new(meta, range, stream))
        })
    }

    fn start_upload<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<Option<Box<dyn Upload>>>> {
        let (path, options) = (path.clone(), options.clone());
        Box::pin(self.blocking(move |s, _| {
            let (target, tmp, file) = s.new_temp(&path)?;
            Ok(Some(Box::new(LocalUpload {
                storage: s,
                path,
                options,
                target,
                tmp,
                file: Arc::new(Mutex::new(file)),
            }) as Box<dyn Upload>))
        }))
    }

    fn head<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<ObjectMeta>> {
        let path = path.clone();
        Box::pin(self.blocking(move |s, _| {
            let file = s.file(&path)?;
            s.meta(&path, &file, true)
        }))
    }

    fn delete<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        let path = path.clone();
        Box::pin(self.blocking(move |s, a| s.delete_blocking(&path, &a)))
    }

    fn list<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        let (prefix, after) = (prefix.cloned(), start_after.cloned());
        Box::pin(self.blocking(move |s, _| s.list_blocking(prefix.as_ref(), after.as_ref())))
    }

    fn list_with_delimiter<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<ListResult>> {
        Box::pin(async move { Ok(one_level(self.list(prefix, None).await?, prefix)) })
    }

    fn copy<'a>(&'a self, from: &'a ObjectPath, to: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let object = self.get(from, &GetOptions::default()).await?;
            let options = PutOptions::keeping(object.meta);
            self.put(to, object.bytes, &options).await.map(drop)
        })
    }

    fn rename<'a>(&'a self, from: &'a ObjectPath, to: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        let (from, to) = (from.clone(), to.clone());
        Box::pin(self.blocking(move |s, abandoned| {
            let (src, dst) = (s.file(&from)?, s.file(&to)?);
            let _guards = s.lock_both(&from, &to);
            abandoned.check(&from)?;
            // Only an object moves: a key that is just a "directory" of others is not one.
            let is_object = std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_file());
            if !is_object {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no object at {from}"),
                ));
            }
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_error(e, format!("{to}")))?;
            }
            // The file keeps its inode and mtime, so its metadata entry still matches it: the
            // entry is copied to the new key first, so a crash in between loses nothing.
            let (meta_src, meta_dst) = (s.sidecar_file(&from), s.sidecar_file(&to));
            let version = s.meta(&from, &src, false)?.version;
            let moved = if meta_src.exists() {
                sidecar::locked(&meta_dst, || {
                    sidecar::copy(&meta_src, &meta_dst, &version)?;
                    std::fs::rename(&src, &dst)
                })
            } else {
                std::fs::rename(&src, &dst)
            };
            moved.map_err(|e| io_error(e, format!("renaming {from}")))?;
            s.remove_locked(&from, &src)
        }))
    }
}

#[cfg(test)]
mod tests;
