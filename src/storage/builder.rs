//! `StorageBuilder`: a [`Storage`] handle configured in one chain, as every module's handle is.

#[allow(unused_imports)]
use super::*;
use crate::Result;

/// Builds a [`Storage`] over a backend; from [`Storage::builder`].
///
/// ```
/// # #[cfg(feature = "storage-memory")]
/// # fn run() -> corekit::Result<()> {
/// use corekit::storage::{MemoryStorage, RetryPolicy, Storage};
/// let storage = Storage::builder(MemoryStorage::new())
///     .retry(RetryPolicy::default().max_attempts(2))
///     .prefix("tenant-a")
///     .build()?;
/// assert_eq!(storage.backend_name(), "memory");
/// # Ok(()) }
/// ```
#[must_use]
pub struct StorageBuilder {
    storage: Storage,
    part_size: Option<usize>,
    prefix: Option<String>,
}

impl std::fmt::Debug for StorageBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageBuilder")
            .field("storage", &self.storage)
            .field("part_size", &self.part_size)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl StorageBuilder {
    /// Retries, per-attempt timeout and deadline (default [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.storage = self.storage.with_retry(policy);
        self
    }

    /// The part size of streaming uploads (at least [`MIN_PART_SIZE`], a multiple of 256 KiB;
    /// checked by [`build`](Self::build)).
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.part_size = Some(bytes);
        self
    }

    /// Parts uploaded at once by a streaming upload (default 4).
    pub fn upload_concurrency(mut self, parts: usize) -> Self {
        self.storage = self.storage.with_upload_concurrency(parts);
        self
    }

    /// Scopes every key under `prefix` (as [`Storage::scoped`]).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The handle.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) for a part size out of range or a
    /// prefix that is not a valid key.
    pub fn build(self) -> Result<Storage> {
        let mut storage = self.storage;
        if let Some(bytes) = self.part_size {
            storage = storage.with_part_size(bytes)?;
        }
        if let Some(prefix) = self.prefix {
            storage = storage.scoped(&ObjectPath::new(&prefix)?)?;
        }
        Ok(storage)
    }
}

impl Storage {
    /// A builder over `backend`, with the default [`RetryPolicy`], part size and upload
    /// concurrency.
    pub fn builder<B: Backend>(backend: B) -> StorageBuilder {
        StorageBuilder {
            storage: Storage::new(backend),
            part_size: None,
            prefix: None,
        }
    }
}
