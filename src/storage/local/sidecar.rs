//! Metadata sidecars of local storage: one JSON file per key holding the metadata of the
//! object's live version and of a version being written, so that bytes and metadata change
//! together. A writer adds its entry *before* renaming its bytes into place, under a lock on
//! the sidecar's directory that other processes sharing the root take too: a writer killed
//! between the two steps leaves the old bytes with their metadata, and no reader ever sees new
//! bytes without theirs.

use super::super::{PutOptions, Version};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The metadata of one version of an object.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Entry {
    /// The version this metadata belongs to (inode, size and mtime survive the rename).
    #[serde(default)]
    pub version: Option<Version>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// The file: entries newest first (at most the one being written and the live one).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Sidecar {
    entries: Vec<Entry>,
}

impl Entry {
    /// What `options` asks to store for `version`; `None` when it has no metadata.
    pub(super) fn of(options: &PutOptions, version: &Version) -> Option<Self> {
        let empty = options.content_type.is_none()
            && options.cache_control.is_none()
            && options.content_disposition.is_none()
            && options.metadata.is_empty();
        (!empty).then(|| Self {
            version: Some(version.clone()),
            content_type: options.content_type.clone(),
            cache_control: options.cache_control.clone(),
            content_disposition: options.content_disposition.clone(),
            metadata: options.metadata.clone(),
        })
    }
}

/// Every entry of the sidecar at `file` (none when missing or unreadable). Sidecars written
/// before entries existed hold one entry's fields at the top level.
fn read(file: &Path) -> Vec<Entry> {
    let Ok(bytes) = std::fs::read(file) else {
        return Vec::new();
    };
    serde_json::from_slice::<Sidecar>(&bytes)
        .ok()
        .filter(|s| !s.entries.is_empty())
        .map(|s| s.entries)
        .or_else(|| {
            serde_json::from_slice::<Entry>(&bytes)
                .ok()
                .map(|e| vec![e])
        })
        .unwrap_or_default()
}

/// The metadata of `version`, if the sidecar at `file` has it.
pub(super) fn find(file: &Path, version: &Version) -> Option<Entry> {
    read(file)
        .into_iter()
        .find(|e| e.version.as_ref().is_none_or(|v| v == version))
}

/// Runs `f` holding the lock of `file`'s directory (created if missing), which every process
/// writing a sidecar there takes.
pub(super) fn locked<T>(file: &Path, f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let lock = std::fs::File::open(dir)?;
    lock.lock()?;
    let result = f();
    let _ = lock.unlock();
    result
}

/// Adds `entry` to the sidecar at `file`, keeping only the entry of `live` (the version now in
/// place) beside it. The caller holds [`locked`].
pub(super) fn add(file: &Path, entry: Entry, live: Option<&Version>) -> std::io::Result<()> {
    let mut entries = vec![entry];
    entries.extend(
        read(file)
            .into_iter()
            .filter(|e| live.is_some() && e.version.as_ref() == live)
            .take(1),
    );
    write(file, &Sidecar { entries })
}

/// Copies the entry of `version` from `from` into the sidecar at `to` (a rename's first step).
/// The caller holds [`locked`] for `to`.
pub(super) fn copy(from: &Path, to: &Path, version: &Version) -> std::io::Result<()> {
    match find(from, version) {
        Some(entry) => add(to, entry, None),
        None => Ok(()),
    }
}

fn write(file: &Path, sidecar: &Sidecar) -> std::io::Result<()> {
    let json = serde_json::to_vec(sidecar).map_err(std::io::Error::other)?;
    let tmp: PathBuf =
        file.with_file_name(format!("{}{:016x}", super::TEMP_MARK, fastrand::u64(..)));
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(&json));
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, file)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}
