//! The config loader against the real process environment (the unit tests use `from_vars`).

#[path = "../support/mod.rs"]
mod support;

use corekit::ErrorKind;
use corekit::config::{self, EnvConfig, Secret};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Demo {
    #[serde(with = "config::duration")]
    timeout: Duration,
    #[serde(with = "config::size")]
    max_body: u64,
    token: Option<Secret>,
}

impl Default for Demo {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            max_body: 1024,
            token: None,
        }
    }
}

impl EnvConfig for Demo {
    const PREFIX: &'static str = "COREKIT_IT_DEMO_";
    const SECRETS: &'static [&'static str] = &["token"];
}

// One test touches the process environment, so nothing races on it.
#[test]
fn from_env_reads_the_process_environment_under_each_prefix() {
    // SAFETY: this binary's only test that reads or writes the environment.
    unsafe {
        std::env::set_var("COREKIT_IT_DEMO_TIMEOUT", "250ms");
        std::env::set_var("COREKIT_IT_DEMO_MAX_BODY", "64MiB");
        std::env::set_var("COREKIT_IT_DEMO_TOKEN", "s3cr3t");
        std::env::set_var("COREKIT_IT_OTHER_TIMEOUT", "ten");
    }
    let demo = Demo::from_env().expect("valid variables load");
    assert_eq!(demo.timeout, Duration::from_millis(250));
    assert_eq!(demo.max_body, 64 << 20);
    assert_eq!(demo.token.as_ref().map(Secret::expose), Some("s3cr3t"));
    assert!(!format!("{demo:?}").contains("s3cr3t"));

    let err = Demo::from_env_prefixed("COREKIT_IT_OTHER_").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(
        err.to_string(),
        r#"invalid configuration: COREKIT_IT_OTHER_TIMEOUT="ten": expected a duration like 30s, 250ms or 5m"#
    );
}
