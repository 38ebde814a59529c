//! Mailbox addresses, parsed and checked once, when an email is built.

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A mailbox: an address and an optional display name.
///
/// Parses `ada@example.com`, `Ada Lovelace <ada@example.com>` and
/// `"Lovelace, Ada" <ada@example.com>`. The address must be ASCII (no SMTPUTF8): a local part of
/// RFC 5322 atoms separated by single dots, at most 64 bytes, and a domain of letters, digits and
/// inner hyphens, each label at most 63 bytes. Control characters anywhere (a CR/LF would be
/// header injection) are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    name: Option<String>,
    email: String,
}

impl Address {
    /// An address without a display name.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) naming what is wrong with it.
    pub fn new(email: &str) -> Result<Self> {
        check_email(email)?;
        Ok(Self {
            name: None,
            email: email.to_owned(),
        })
    }

    /// An address with a display name (any Unicode; encoded on the wire as needed).
    ///
    /// # Errors
    /// As [`new`](Self::new), and for control characters in the name.
    pub fn with_name(name: &str, email: &str) -> Result<Self> {
        let mut a = Self::new(email)?;
        if name.chars().any(char::is_control) {
            return Err(Error::invalid_input(format!(
                "display name {name:?} contains a control character"
            )));
        }
        let name = name.trim();
        a.name = (!name.is_empty()).then(|| name.to_owned());
        Ok(a)
    }

    /// The bare address, `ada@example.com`.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The display name, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The domain part.
    pub fn domain(&self) -> &str {
        self.email.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.chars().any(char::is_control) {
            return Err(Error::invalid_input(format!(
                "address {s:?} contains a control character"
            )));
        }
        match s.strip_suffix('>').and_then(|r| r.rsplit_once('<')) {
            Some((name, email)) => {
                let name = name.trim();
                let name = name
                    .strip_prefix('"')
                    .and_then(|n| n.strip_suffix('"'))
                    .map(|n| n.replace("\\\"", "\"").replace("\\\\", "\\"))
                    .unwrap_or_else(|| name.to_owned());
                Self::with_name(&name, email.trim())
            }
            None => Self::new(s),
        }
    }
}

impl TryFrom<&str> for Address {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        s.parse()
    }
}

impl TryFrom<String> for Address {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl TryFrom<&String> for Address {
    type Error = Error;
    fn try_from(s: &String) -> Result<Self> {
        s.parse()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => {
                let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, "\"{escaped}\" <{}>", self.email)
            }
            None => f.write_str(&self.email),
        }
    }
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn check_email(email: &str) -> Result<()> {
    let bad = |why: &str| Error::invalid_input(format!("address {email:?} is not valid: {why}"));
    let (local, domain) = email.rsplit_once('@').ok_or_else(|| bad("no '@'"))?;
    if local.is_empty() || local.len() > 64 {
        return Err(bad("the part before '@' must be 1 to 64 characters"));
    }
    if local
        .split('.')
        .any(|atom| atom.is_empty() || !atom.chars().all(is_atext))
    {
        return Err(bad(
            "the part before '@' must be letters, digits or !#$%&'*+-/=?^_`{|}~ with single dots between",
        ));
    }
    if domain.is_empty() || domain.len() > 253 {
        return Err(bad("the domain must be 1 to 253 characters"));
    }
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad(
                "the domain must be dot-separated labels of ASCII letters, digits and inner hyphens",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let a: Address = "ada@example.com".parse().unwrap();
        assert_eq!((a.email(), a.name()), ("ada@example.com", None));
        let a: Address = "Ada Lovelace <ada@example.com>".parse().unwrap();
        assert_eq!(a.name(), Some("Ada Lovelace"));
        let a: Address = r#""Lovelace, Ada \"AL\"" <ada+tag@mail.example.co.uk>"#
            .parse()
            .unwrap();
        assert_eq!(a.name(), Some(r#"Lovelace, Ada "AL""#));
        assert_eq!(a.domain(), "mail.example.co.uk");
        assert_eq!(
            a.to_string(),
            r#""Lovelace, Ada \"AL\"" <ada+tag@mail.example.co.uk>"#
        );
        let a: Address = "Zoë <z@localhost>".parse().unwrap();
        assert_eq!(a.name(), Some("Zoë"));
    }

    #[test]
    fn rejects_what_would_break_or_inject() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a..b@example.com",
            ".a@example.com",
            "a b@example.com",
            "a@exa mple.com",
            "a@-example.com",
            "a@example..com",
            "a@example.com\r\nBcc: victim@example.com",
            "Name\r\n <a@example.com>",
            "ünï@example.com",
            "a@exämple.com",
            "<a@example.com",
        ] {
            let e = bad.parse::<Address>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(Address::new(&format!("{}@example.com", "a".repeat(65))).is_err());
    }
}
