//! Configuration from environment variables, shared by every module.
//!
//! Each module has a config struct that implements [`EnvConfig`]: it loads from variables under a
//! prefix (`CACHE_`, `QUEUE_`, `STORAGE_`, `EMAIL_`, `SCHEDULER_`), every field has a documented
//! default, and the same [`EnvConfig::validate`] runs whether the struct came from the
//! environment or from a builder in code.
//!
//! Values are parsed the way people write them: durations as `250ms`, `30s`, `5m`, `1h 30m`;
//! sizes as `512`, `64KiB`, `64MiB`, `1GB`; lists as `a,b,c`. A bad value fails at startup with
//! an error that names the variable, the value and what was expected:
//!
//! ```text
//! invalid configuration: CACHE_DEFAULT_TTL="ten": expected a duration like 30s, 250ms or 5m
//! ```
//!
//! Secrets (passwords, keys, tokens) are held in [`Secret`], whose `Debug` and `Display` print
//! `***`, and are redacted from error messages.
//!
//! # Writing a config struct
//!
//! ```
//! use corekit::config::{self, ConfigIssue, EnvConfig, Secret};
//! use serde::Deserialize;
//! use std::time::Duration;
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(default)]
//! struct ApiConfig {
//!     #[serde(with = "config::duration")]
//!     timeout: Duration,
//!     token: Option<Secret>,
//! }
//!
//! impl Default for ApiConfig {
//!     fn default() -> Self {
//!         Self { timeout: Duration::from_secs(5), token: None }
//!     }
//! }
//!
//! impl EnvConfig for ApiConfig {
//!     const PREFIX: &'static str = "API_";
//!     const SECRETS: &'static [&'static str] = &["token"];
//!
//!     fn validate(&self) -> Result<(), ConfigIssue> {
//!         if self.timeout.is_zero() {
//!             return Err(ConfigIssue::new("timeout", "0s", "a duration above zero"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let vars = [("API_TIMEOUT".to_string(), "ten".to_string())];
//! let err = ApiConfig::from_vars(ApiConfig::PREFIX, vars).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     r#"invalid configuration: API_TIMEOUT="ten": expected a duration like 30s, 250ms or 5m"#
//! );
//! ```

mod url;

#[cfg(any(feature = "_email", feature = "observability", feature = "_storage"))]
pub(crate) use url::percent_decode;
pub use url::redact_url;
#[cfg(any(feature = "queue-nats", feature = "queue-rabbitmq"))]
pub(crate) use url::scrub;

use crate::error::{Error, Result};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A password, key or token: `Debug` and `Display` print `***`, so it never reaches a log.
///
/// Read the value with [`expose`](Secret::expose) at the one place that needs it.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call this only where the value is handed to the backend.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What [`EnvConfig::validate`] found wrong: the field, the value and what was expected.
///
/// The loader turns the field into the variable's name (`max_entries` under `CACHE_` becomes
/// `CACHE_MAX_ENTRIES`); a builder names the field as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    field: &'static str,
    value: String,
    expected: String,
}

impl ConfigIssue {
    /// `field` (as named in the struct) holds `value`, but `expected` was expected.
    pub fn new(field: &'static str, value: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            field,
            value: value.into(),
            expected: expected.into(),
        }
    }

    /// The struct field at fault.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Turns the issue into a [`Config`](crate::ErrorKind::Config) error for the variable
    /// `prefix` + `FIELD`, redacting the value when the field is secret.
    pub fn into_error(self, prefix: &str, secrets: &[&str]) -> Error {
        let var = variable_name(prefix, self.field);
        self.into_error_for(&var, secrets)
    }

    /// As [`into_error`](Self::into_error), for a variable named in full.
    fn into_error_for(self, var: &str, secrets: &[&str]) -> Error {
        let value = redact(self.field, &self.value, secrets);
        Error::config(format!("{var}={value:?}: expected {}", self.expected))
    }
}

/// Which variable each setting of a loaded config came from (its own, or an ecosystem
/// fallback such as `REDIS_URL`), and the prefix it was loaded under; empty for a config built
/// in code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    prefix: String,
    variables: Vec<(String, String)>,
}

impl Sources {
    /// The variable `field` (the struct's field name) was read from, if it was set.
    pub fn variable(&self, field: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(field))
            .map(|(_, v)| v.as_str())
    }

    /// Where an address in `field` came from, for an error: `address from REDIS_URL`, or `the
    /// default address (set CACHE_REDIS_URL)` when nothing set it.
    pub fn describe(&self, field: &str) -> String {
        match self.variable(field) {
            Some(var) => format!("address from {var}"),
            None if self.prefix.is_empty() => "the address in the config".to_owned(),
            None => format!(
                "the default address (set {})",
                variable_name(&self.prefix, field)
            ),
        }
    }
}

/// A configuration struct loaded from environment variables under a prefix.
///
/// Implementors derive `Deserialize` with `#[serde(default)]` and implement `Default` with the
/// documented defaults; [`from_env`](Self::from_env) and [`from_vars`](Self::from_vars) then load,
/// parse and [`validate`](Self::validate) in one step.
pub trait EnvConfig: DeserializeOwned + Sized {
    /// The default variable prefix, e.g. `"CACHE_"`.
    const PREFIX: &'static str;

    /// Fields whose values are never printed, in the struct's (lowercase) field names.
    const SECRETS: &'static [&'static str] = &[];

    /// The ecosystem's usual variables, read (first set wins) for a field whose own variable is
    /// unset: `("redis_url", &["REDIS_URL"])` lets a cache find `REDIS_URL`. An error about
    /// such a value names the variable it came from.
    const FALLBACKS: &'static [(&'static str, &'static [&'static str])] = &[];

    /// Checks values that parse but make no sense together or out of range.
    fn validate(&self) -> std::result::Result<(), ConfigIssue> {
        Ok(())
    }

    /// Where the loader records which variable each setting came from; `None` (the default)
    /// for configs that do not keep it.
    fn sources_mut(&mut self) -> Option<&mut Sources> {
        None
    }

    /// Loads from the process environment under [`PREFIX`](Self::PREFIX).
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the variable, its value (redacted when
    /// secret) and what was expected.
    fn from_env() -> Result<Self> {
        Self::from_env_prefixed(Self::PREFIX)
    }

    /// Loads from the process environment under another prefix, e.g. `SESSIONS_CACHE_` for a
    /// second cache in the same service.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    fn from_env_prefixed(prefix: &str) -> Result<Self> {
        Self::from_vars(prefix, std::env::vars())
    }

    /// Loads from the given `(name, value)` pairs under `prefix`; pairs without the prefix are
    /// ignored. Tests use this instead of mutating the process environment.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    fn from_vars<I>(prefix: &str, vars: I) -> Result<Self>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let all: Vec<(String, String)> = vars.into_iter().collect();
        let mut vars: Vec<(String, String)> = all
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|f| (f.to_owned(), v.clone())))
            .collect();
        // Which fields took their value from an ecosystem variable, and which one.
        let mut origins: Vec<(&str, &str)> = Vec::new();
        for (field, names) in Self::FALLBACKS {
            if vars.iter().any(|(k, _)| k.eq_ignore_ascii_case(field)) {
                continue;
            }
            let found = names
                .iter()
                .find_map(|name| all.iter().find(|(k, _)| k == name).map(|(_, v)| (*name, v)));
            if let Some((name, value)) = found {
                vars.push((field.to_ascii_uppercase(), value.clone()));
                origins.push((field, name));
            }
        }
        let variable = |field: &str| {
            origins
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(field))
                .map_or_else(
                    || variable_name(prefix, field),
                    |(_, name)| (*name).to_owned(),
                )
        };
        let tracked: Tracked<Self> = envy::from_iter(vars.iter().cloned())
            .map_err(|e| Error::config(format!("variables under {prefix}*: {e}")))?;
        let mut config = match tracked.0 {
            Ok(config) => config,
            Err((field, message)) => {
                let var = variable(&field);
                let value = vars
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&field))
                    .map(|(_, v)| v.as_str());
                let message = clean_message(&message);
                return Err(Error::config(match value {
                    Some(v) => format!("{var}={:?}: {message}", redact(&field, v, Self::SECRETS)),
                    None => format!("{var}: {message}"),
                }));
            }
        };
        config.validate().map_err(|mut issue| {
            // Show the value as the user wrote it (`1MiB`, not `1048576`).
            if let Some((_, raw)) = vars
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(issue.field))
            {
                issue.value = raw.clone();
            }
            let var = variable(issue.field);
            issue.into_error_for(&var, Self::SECRETS)
        })?;
        if let Some(sources) = config.sources_mut() {
            sources.prefix = prefix.to_owned();
            sources.variables = vars
                .iter()
                .map(|(k, _)| (k.to_ascii_lowercase(), variable(k)))
                .collect();
        }
        Ok(config)
    }
}

/// Deserializes `T` but keeps a failure, with the path of the field that failed, as a value, so
/// the loader can name the variable (envy's own errors do not, for custom parsers).
struct Tracked<T>(std::result::Result<T, (String, String)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Tracked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Tracked(serde_path_to_error::deserialize(d).map_err(|e| {
            (e.path().to_string(), e.inner().to_string())
        })))
    }
}

fn variable_name(prefix: &str, field: &str) -> String {
    format!("{prefix}{}", field.to_ascii_uppercase())
}

/// envy appends "while parsing value 'x' provided by Y" to its own parse errors; the loader
/// reports the variable and value itself (redacted where secret), so drop that tail.
fn clean_message(message: &str) -> String {
    let message = message
        .split(" while parsing value")
        .next()
        .unwrap_or(message);
    if message.starts_with("expected") {
        message.to_owned()
    } else {
        format!("invalid value ({message})")
    }
}

/// A value fit to print: a secret URL keeps its scheme, host and path (what a reader needs)
/// but not its password or query (`?password=`, tokens), any other secret is `***`.
fn redact(field: &str, value: &str, secrets: &[&str]) -> String {
    if !secrets.iter().any(|s| s.eq_ignore_ascii_case(field)) {
        redact_url(value)
    } else if value.contains("://") {
        match redact_url(value).split_once('?') {
            Some((url, _)) => format!("{url}?***"),
            None => redact_url(value),
        }
    } else {
        "***".to_owned()
    }
}

/// Warns when `from_env` fell back to its default backend in a process that sets none of the
/// module's variables (`prefix`): a missing or misspelt variable must not go unnoticed.
/// `what` says what the default means for the user's data, `hint` what to set.
#[cfg(any(
    feature = "_cache",
    feature = "_queue",
    feature = "_email",
    feature = "_storage",
    feature = "scheduler"
))]
pub(crate) fn warn_if_defaulted(prefix: &str, what: &str, hint: &str) {
    if !std::env::vars().any(|(k, _)| k.starts_with(prefix)) {
        tracing::warn!("no {prefix}* variable is set, so {what}; set {hint}");
    }
}

/// Refuses a `<MODULE>_BACKEND` that names another backend than `<MODULE>_URL`'s scheme
/// (`compatible` allows pairs that are not a contradiction, such as a tiered cache over a Redis
/// URL).
#[cfg(any(feature = "_cache", feature = "_queue", feature = "_email"))]
pub(crate) fn check_backend_matches_url(
    backend: Option<&'static str>,
    from_url: Option<&'static str>,
    url_variable: &str,
    compatible: &[(&str, &str)],
) -> std::result::Result<(), ConfigIssue> {
    match (backend, from_url) {
        (Some(b), Some(u)) if b != u && !compatible.contains(&(b, u)) => Err(ConfigIssue::new(
            "backend",
            b,
            format!("the backend {url_variable} names ({u}), or unset"),
        )),
        _ => Ok(()),
    }
}

/// Checks the retry settings every module shares (`max_attempts`, `retry_backoff`,
/// `retry_backoff_max`): at least one attempt, and a cap no lower than the first delay.
pub fn check_retry(
    max_attempts: u32,
    backoff: std::time::Duration,
    backoff_max: std::time::Duration,
) -> std::result::Result<(), ConfigIssue> {
    if max_attempts == 0 {
        return Err(ConfigIssue::new("max_attempts", "0", "at least 1"));
    }
    if backoff_max < backoff {
        return Err(ConfigIssue::new(
            "retry_backoff_max",
            humantime::format_duration(backoff_max).to_string(),
            format!(
                "a duration no shorter than RETRY_BACKOFF ({})",
                humantime::format_duration(backoff)
            ),
        ));
    }
    Ok(())
}

/// Parses a duration written as `250ms`, `30s`, `5m`, `1h 30m` or `0`.
///
/// # Errors
/// A message saying what was expected.
pub fn parse_duration(value: &str) -> std::result::Result<std::time::Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|_| "expected a duration like 30s, 250ms or 5m".to_owned())
}

/// Parses a size in bytes written as `512`, `64KiB`, `64MiB`, `1GB` (`KB` = 1000, `KiB` = 1024).
///
/// # Errors
/// A message saying what was expected.
pub fn parse_size(value: &str) -> std::result::Result<u64, String> {
    const EXPECTED: &str = "expected a size like 512, 64KiB, 64MiB or 1GB";
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| EXPECTED.to_owned())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" | "t" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return Err(EXPECTED.to_owned()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{EXPECTED} (this one overflows 64 bits)"))
}

/// Parses a comma-separated list, trimming spaces and dropping empty items.
pub fn parse_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `#[serde(with = "corekit::config::duration")]` for a `std::time::Duration` field written as
/// `250ms`, `30s`, `5m`.
pub mod duration {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use std::time::Duration;

    /// Deserializes with [`parse_duration`](super::parse_duration).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(D::Error::custom)
    }

    /// Serializes as humantime text (`30s`).
    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }
}

/// `#[serde(default, with = "corekit::config::option_duration")]` for an `Option<Duration>`.
pub mod option_duration {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use std::time::Duration;

    /// Deserializes with [`parse_duration`](super::parse_duration); an empty value is `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Ok(None);
        }
        super::parse_duration(&s)
            .map(Some)
            .map_err(D::Error::custom)
    }

    /// Serializes as humantime text, or none.
    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_some(&humantime::format_duration(*v).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// `#[serde(with = "corekit::config::size")]` for a `u64` byte count written as `64MiB`.
pub mod size {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Deserializes with [`parse_size`](super::parse_size).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_size(&s).map_err(D::Error::custom)
    }

    /// Serializes as a plain number of bytes.
    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*value)
    }
}

/// `#[serde(with = "corekit::config::option_size")]` for an `Option<u64>` byte count (unset:
/// `None`).
pub mod option_size {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Deserializes with [`parse_size`](super::parse_size).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_size(&s).map(Some).map_err(D::Error::custom)
    }

    /// Serializes as a plain number of bytes, or none.
    pub fn serialize<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_u64(*v),
            None => s.serialize_none(),
        }
    }
}

/// `#[serde(with = "corekit::config::list")]` for a `Vec<String>` written as `a, b, c`.
pub mod list {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Deserializes with [`parse_list`](super::parse_list).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let s = String::deserialize(d)?;
        Ok(super::parse_list(&s))
    }

    /// Serializes as one comma-separated string.
    pub fn serialize<S: Serializer>(value: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::time::Duration;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(default)]
    struct Sample {
        #[serde(with = "duration")]
        ttl: Duration,
        #[serde(with = "option_duration")]
        idle: Option<Duration>,
        #[serde(with = "size")]
        max_bytes: u64,
        #[serde(with = "list")]
        hosts: Vec<String>,
        max_entries: u64,
        enabled: bool,
        password: Option<Secret>,
        url: String,
        mode: Mode,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Memory,
        Redis,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                ttl: Duration::from_secs(60),
                idle: None,
                max_bytes: 1 << 20,
                hosts: vec!["localhost".into()],
                max_entries: 10,
                enabled: true,
                password: None,
                url: "redis://127.0.0.1:6379".into(),
                mode: Mode::Memory,
            }
        }
    }

    impl EnvConfig for Sample {
        const PREFIX: &'static str = "CACHE_";
        const SECRETS: &'static [&'static str] = &["password"];
        const FALLBACKS: &'static [(&'static str, &'static [&'static str])] = &[
            ("url", &["REDIS_URL", "OTHER_REDIS_URL"]),
            ("password", &["PW"]),
        ];

        fn validate(&self) -> std::result::Result<(), ConfigIssue> {
            if self.max_entries == 0 {
                return Err(ConfigIssue::new("max_entries", "0", "a number above 0"));
            }
            if self.password.as_ref().is_some_and(|p| p.expose().len() < 3) {
                return Err(ConfigIssue::new(
                    "password",
                    self.password
                        .as_ref()
                        .map(|p| p.expose())
                        .unwrap_or_default(),
                    "at least 3 characters",
                ));
            }
            Ok(())
        }
    }

    fn load(prefix: &str, vars: &[(&str, &str)]) -> Result<Sample> {
        Sample::from_vars(
            prefix,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    fn config_err(vars: &[(&str, &str)]) -> String {
        let err = load("CACHE_", vars).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(!err.is_retryable());
        err.to_string()
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        assert_eq!(
            load("CACHE_", &[("OTHER", "1")]).unwrap(),
            Sample::default()
        );
    }

    #[test]
    fn every_value_form_parses() {
        let c = load(
            "CACHE_",
            &[
                ("CACHE_TTL", "250ms"),
                ("CACHE_IDLE", "5m"),
                ("CACHE_MAX_BYTES", "64MiB"),
                ("CACHE_HOSTS", "a, b,,c"),
                ("CACHE_MAX_ENTRIES", "1000"),
                ("CACHE_ENABLED", "false"),
                ("CACHE_PASSWORD", "hunter2"),
                ("CACHE_MODE", "redis"),
            ],
        )
        .unwrap();
        assert_eq!(c.ttl, Duration::from_millis(250));
        assert_eq!(c.idle, Some(Duration::from_secs(300)));
        assert_eq!(c.max_bytes, 64 << 20);
        assert_eq!(c.hosts, ["a", "b", "c"]);
        assert_eq!(c.max_entries, 1000);
        assert!(!c.enabled);
        assert_eq!(c.password.as_ref().unwrap().expose(), "hunter2");
        assert_eq!(c.mode, Mode::Redis);
    }

    #[test]
    fn prefix_can_be_changed() {
        let c = load(
            "SESSIONS_CACHE_",
            &[("CACHE_TTL", "1s"), ("SESSIONS_CACHE_TTL", "2s")],
        )
        .unwrap();
        assert_eq!(c.ttl, Duration::from_secs(2));
    }

    #[test]
    fn bad_duration_names_variable_value_and_expectation() {
        assert_eq!(
            config_err(&[("CACHE_TTL", "ten")]),
            r#"invalid configuration: CACHE_TTL="ten": expected a duration like 30s, 250ms or 5m"#
        );
        assert!(
            config_err(&[("CACHE_IDLE", "soon")])
                .contains(r#"CACHE_IDLE="soon": expected a duration"#)
        );
    }

    #[test]
    fn bad_size_names_variable() {
        assert_eq!(
            config_err(&[("CACHE_MAX_BYTES", "64 furlongs")]),
            r#"invalid configuration: CACHE_MAX_BYTES="64 furlongs": expected a size like 512, 64KiB, 64MiB or 1GB"#
        );
    }

    #[test]
    fn bad_number_and_bool_and_enum_name_variable() {
        let e = config_err(&[("CACHE_MAX_ENTRIES", "lots")]);
        assert!(
            e.starts_with(r#"invalid configuration: CACHE_MAX_ENTRIES="lots": invalid value"#),
            "{e}"
        );
        let e = config_err(&[("CACHE_ENABLED", "yes please")]);
        assert!(
            e.starts_with(r#"invalid configuration: CACHE_ENABLED="yes please""#),
            "{e}"
        );
        let e = config_err(&[("CACHE_MODE", "memcached")]);
        assert!(
            e.starts_with(r#"invalid configuration: CACHE_MODE="memcached""#),
            "{e}"
        );
        assert!(e.contains("redis"), "lists the variants: {e}");
    }

    #[test]
    fn validation_failure_uses_the_prefix() {
        assert_eq!(
            config_err(&[("CACHE_MAX_ENTRIES", "0")]),
            r#"invalid configuration: CACHE_MAX_ENTRIES="0": expected a number above 0"#
        );
        let e = load("B_", &[("B_MAX_ENTRIES", "0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("B_MAX_ENTRIES"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_in_errors_and_debug() {
        let e = config_err(&[("CACHE_PASSWORD", "pw")]);
        assert_eq!(
            e,
            r#"invalid configuration: CACHE_PASSWORD="***": expected at least 3 characters"#
        );
        assert!(!e.contains("pw\""));
        let c = load("CACHE_", &[("CACHE_PASSWORD", "hunter2")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Secret::new("x").to_string(), "***");
        assert!(Secret::default().is_empty());
    }

    #[test]
    fn config_errors_redact_url_passwords() {
        let e = config_err(&[("CACHE_MAX_ENTRIES", "redis://u:pw@h")]);
        assert!(e.contains("u:***@h") && !e.contains("pw@"), "{e}");
    }

    #[test]
    fn ecosystem_variables_fill_unset_fields_and_are_named_in_errors() {
        let c = load(
            "CACHE_",
            &[("OTHER_REDIS_URL", "redis://b"), ("REDIS_URL", "redis://a")],
        )
        .unwrap();
        assert_eq!(c.url, "redis://a", "the first name listed wins");
        let c = load(
            "CACHE_",
            &[("REDIS_URL", "redis://a"), ("CACHE_URL", "redis://own")],
        )
        .unwrap();
        assert_eq!(c.url, "redis://own", "the module's own variable wins");
        let e = config_err(&[("PW", "ab")]);
        assert!(e.contains("PW=\"***\""), "{e}");
        assert!(!e.contains("ab"), "{e}");
    }

    #[test]
    fn parsers() {
        assert_eq!(
            parse_duration(" 1h 30m ").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1 GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("2gib").unwrap(), 2 << 30);
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert!(
            parse_size("99999999999TiB")
                .unwrap_err()
                .contains("overflows")
        );
        assert!(parse_list("").is_empty());
        assert_eq!(parse_list(" a ,b"), ["a", "b"]);
    }

    #[test]
    fn issue_into_error_for_builders() {
        let e = ConfigIssue::new("max_entries", "0", "a number above 0").into_error("", &[]);
        assert_eq!(
            e.to_string(),
            r#"invalid configuration: MAX_ENTRIES="0": expected a number above 0"#
        );
        assert_eq!(ConfigIssue::new("x", "", "").field(), "x");
    }
}
