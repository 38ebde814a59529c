//! Keeping passwords in URLs out of logs and errors.

/// Decodes `%XX` escapes (URL user-info, OTLP attribute values); invalid escapes stay as they
/// are and invalid UTF-8 becomes U+FFFD.
#[cfg(any(
    feature = "_email",
    feature = "observability",
    feature = "_storage",
    feature = "queue-nats",
    feature = "queue-rabbitmq"
))]
pub(crate) fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(Some(hi)), Some(Some(lo))) = (
            bytes[i],
            bytes.get(i + 1).map(|b| hex(*b)),
            bytes.get(i + 2).map(|b| hex(*b)),
        ) {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replaces the password in a URL's user-info (`redis://user:pw@host`) with `***`, so a URL can
/// be logged or put in an error. Strings that are not such URLs come back unchanged.
///
/// Passwords are not always escaped, so the user-info is taken to run to the *last* `@` of each
/// URL (a comma-separated list holds several): a password with `/`, `#`, `?`, `@` or `:` is
/// still hidden, at the cost of hiding a little more of an URL whose path holds an `@`.
pub fn redact_url(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut done = 0;
    for userinfo in userinfos(value) {
        let text = &value[userinfo.clone()];
        // A lone token before '@' (redis://token@host) is a password too.
        let user = text.find(':').map_or("", |colon| &text[..colon]);
        out.push_str(&value[done..userinfo.start]);
        out.push_str(user);
        out.push_str(":***");
        done = userinfo.end;
    }
    out.push_str(&value[done..]);
    out
}

/// `text` with every password of `urls` (as written, percent-decoded and percent-encoded)
/// replaced by `***`: for messages of client libraries that may quote the URL they were given.
#[cfg(any(feature = "queue-nats", feature = "queue-rabbitmq"))]
pub(crate) fn scrub(text: &str, urls: &str) -> String {
    let mut text = text.to_owned();
    for userinfo in userinfos(urls) {
        let userinfo = &urls[userinfo];
        let password = userinfo.find(':').map_or(userinfo, |c| &userinfo[c + 1..]);
        let encoded: String = password
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'%' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        for p in [password.to_owned(), percent_decode(password), encoded] {
            if !p.is_empty() {
                text = text.replace(&p, "***");
            }
        }
    }
    text
}

/// Where the user-info (`user:password`, before the *last* `@`) of each URL in `value` is:
/// passwords are not always escaped, so nothing else can be trusted to end it.
fn userinfos(value: &str) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = value[at..].find("://") {
        let start = at + i + 3;
        let end = start + next_scheme_start(&value[start..]).unwrap_or(value.len() - start);
        if let Some(last) = value[start..end].rfind('@').filter(|l| *l > 0) {
            found.push(start..start + last);
        }
        at = end;
    }
    found
}

/// Where the next `scheme://` in `s` starts, if any.
fn next_scheme_start(s: &str) -> Option<usize> {
    let at = s.find("://")?;
    let bytes = s.as_bytes();
    let mut start = at;
    while start > 0
        && (bytes[start - 1].is_ascii_alphanumeric() || b"+.-".contains(&bytes[start - 1]))
    {
        start -= 1;
    }
    Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact_url("amqp://token@h/vh"), "amqp://:***@h/vh");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("plain"), "plain");
        assert_eq!(redact_url("http://h/path"), "http://h/path");
        // Unescaped passwords with URL delimiters in them stay hidden.
        for pw in ["p/w", "p#w", "p?w", "p@w", "p:w", "p%w", "/#?@:%", "a,b"] {
            for url in [
                format!("redis://:{pw}@127.0.0.1:6379/0"),
                format!("amqp://user:{pw}@host:5672/%2f"),
                format!("nats://u:{pw}@a:4222,nats://u:{pw}@b:4222"),
            ] {
                let shown = redact_url(&url);
                assert!(!shown.contains(pw), "{pw:?} leaked: {shown}");
                assert!(shown.contains("***"), "{shown}");
            }
        }
        assert_eq!(
            redact_url("nats://u:p@a:4222,nats://b:4222"),
            "nats://u:***@a:4222,nats://b:4222"
        );
    }
}
