//! Listing helpers of the in-process backends and of delimiter listings.

#[allow(unused_imports)]
use super::*;

#[cfg_attr(
    not(any(
        feature = "storage-memory",
        feature = "storage-local",
        feature = "storage-azure"
    )),
    allow(dead_code)
)]
pub(crate) fn one_level(objects: Vec<ObjectMeta>, prefix: Option<&ObjectPath>) -> ListResult {
    let strip = prefix.map_or(0, |p| p.as_str().len() + 1);
    let mut result = ListResult::default();
    for meta in objects {
        let rest = &meta.path.as_str()[strip..];
        match rest.split_once('/') {
            Some((dir, _)) => {
                let full = &meta.path.as_str()[..strip + dir.len()];
                if result.common_prefixes.last().map(ObjectPath::as_str) != Some(full)
                    && let Ok(p) = ObjectPath::new(full)
                {
                    result.common_prefixes.push(p);
                }
            }
            None => result.objects.push(meta),
        }
    }
    result
}

/// Whether `path` is listed under `prefix` / after `after`.
#[cfg(any(feature = "storage-memory", feature = "storage-local"))]
pub(crate) fn listed(
    path: &ObjectPath,
    prefix: Option<&ObjectPath>,
    after: Option<&ObjectPath>,
) -> bool {
    prefix.is_none_or(|p| path.is_under(p)) && after.is_none_or(|a| path > a)
}
