//! How keys are shown in errors and matched by prefix.

#[allow(unused_imports)]
use super::*;

/// A key for messages: quoted text, or `0x…` hex when it is not UTF-8.
pub(crate) fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => format!("{text:?}"),
        Err(_) => {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

/// A `SCAN MATCH` pattern for keys starting with `prefix`: its glob characters escaped, then
/// `*`. fred takes patterns as text, so a prefix that is not UTF-8 is matched by its longest
/// UTF-8 start; the caller filters the keys SCAN returns by the whole prefix.
#[cfg(feature = "cache-redis")]
pub(crate) fn glob_escape(prefix: &[u8]) -> String {
    let text = match std::str::from_utf8(prefix) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&prefix[..e.valid_up_to()]).unwrap_or_default(),
    };
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

#[cfg(all(test, feature = "cache-redis"))]
mod tests {
    #[test]
    fn glob_escape_makes_prefix_literal() {
        assert_eq!(super::glob_escape(b"a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
        assert_eq!(super::glob_escape(b""), "*");
        assert_eq!(super::glob_escape(b"ns:\xff\x00"), "ns:*");
    }
}
