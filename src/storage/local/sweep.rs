//! Removing what writers killed mid-write left behind.

use super::{LocalStorage, SIDECAR_SUFFIX, TEMP_MARK};
use std::time::Duration;

impl LocalStorage {
    /// Removes temporary files (`.corekit-tmp-*`) not written to for `older_than`: what
    /// writers killed mid-write leave behind. A live write touches its file as it goes, so
    /// an hour is safe for any write that makes progress. Returns how many were removed.
    pub fn remove_stale_temp_files(&self, older_than: Duration) -> u64 {
        let mut removed = 0;
        let mut dirs = vec![self.root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else if kind.is_file()
                    && name.contains(TEMP_MARK)
                    && !name.ends_with(SIDECAR_SUFFIX)
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= older_than))
                    && std::fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }
}
