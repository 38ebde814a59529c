//! Email templates on Tera: one name renders subject, HTML and text.

use super::EmailBuilder;
use crate::{Error, Result};
use std::sync::Arc;

/// Email templates: template `welcome` is the files (or strings) `welcome.subject`,
/// `welcome.html` and/or `welcome.txt`. Tera syntax, layouts with `{% extends %}`, HTML
/// auto-escaped in `.html` files, and a variable missing from the context is an error naming the
/// template and the variable, never an empty string in a customer's inbox.
#[derive(Clone)]
pub struct Templates {
    tera: Arc<tera::Tera>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.tera.get_template_names().collect::<Vec<_>>())
            .finish()
    }
}

/// A rendered template.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rendered {
    /// The subject (one line, trimmed).
    pub subject: String,
    /// The HTML body, when the template has one.
    pub html: Option<String>,
    /// The text body, when the template has one.
    pub text: Option<String>,
}

impl Rendered {
    /// Sets subject and bodies on `email`.
    pub fn apply(self, email: EmailBuilder) -> EmailBuilder {
        let mut email = email.subject(self.subject);
        if let Some(html) = self.html {
            email = email.html(html);
        }
        if let Some(text) = self.text {
            email = email.text(text);
        }
        email
    }
}

/// The whole chain of a Tera error, which is where it names the variable.
fn tera_error(e: tera::Error, what: &str) -> Error {
    Error::invalid_input(format!("{what}: {}", crate::error::chain_text(&e)))
}

impl Templates {
    /// Loads every file under `dir` (recursively), named by its path relative to `dir`.
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the file that does not parse.
    pub fn from_dir(dir: &str) -> Result<Self> {
        let glob = format!("{}/**/*", dir.trim_end_matches('/'));
        let tera = tera::Tera::new(&glob).map_err(|e| {
            let e = tera_error(e, &format!("templates in {dir:?}"));
            Error::config(e.message().to_owned())
        })?;
        Ok(Self {
            tera: Arc::new(tera),
        })
    }

    /// Templates from `(name, source)` pairs, e.g. embedded with `include_str!`.
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the template that does not parse.
    pub fn from_strings<'a>(
        templates: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(templates).map_err(|e| {
            let e = tera_error(e, "templates");
            Error::config(e.message().to_owned())
        })?;
        Ok(Self {
            tera: Arc::new(tera),
        })
    }

    /// Renders template `name` with `context` (any `Serialize` struct or map).
    ///
    /// # Errors
    /// `InvalidInput` when `name` has no subject or no body, or rendering fails (the message
    /// names the template and, for a missing variable, the variable).
    pub fn render<C: serde::Serialize>(&self, name: &str, context: &C) -> Result<Rendered> {
        let context = tera::Context::from_serialize(context)
            .map_err(|e| tera_error(e, &format!("template {name:?} context")))?;
        let part = |ext: &str| -> Result<Option<String>> {
            let full = format!("{name}.{ext}");
            if !self.tera.get_template_names().any(|n| n == full) {
                return Ok(None);
            }
            self.tera
                .render(&full, &context)
                .map(Some)
                .map_err(|e| tera_error(e, &format!("rendering template {full:?}")))
        };
        let subject = part("subject")?.ok_or_else(|| {
            Error::invalid_input(format!("template {name:?} has no {name}.subject"))
        })?;
        let html = part("html")?;
        let text = part("txt")?;
        if html.is_none() && text.is_none() {
            return Err(Error::invalid_input(format!(
                "template {name:?} has neither {name}.html nor {name}.txt"
            )));
        }
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Rendered {
            subject,
            html,
            text,
        })
    }
}
