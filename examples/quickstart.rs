//! corekit in one file, on embedded defaults: no server needed.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use corekit::config::{self, EnvConfig};
use serde::Deserialize;
use std::time::Duration;

/// The example's own settings, loaded the way every corekit module loads its own.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct AppConfig {
    #[serde(with = "config::duration")]
    request_timeout: Duration,
    greeting: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            greeting: "hello from corekit".into(),
        }
    }
}

impl EnvConfig for AppConfig {
    const PREFIX: &'static str = "QUICKSTART_";
}

fn main() -> corekit::Result<()> {
    // 1. Configuration: QUICKSTART_REQUEST_TIMEOUT=2s overrides the default.
    let app = AppConfig::from_env()?;
    println!("config: {app:?}");

    // A bad value is caught at startup and names the variable.
    let bad = AppConfig::from_vars(
        "QUICKSTART_",
        [("QUICKSTART_REQUEST_TIMEOUT".to_string(), "ten".to_string())],
    );
    if let Err(err) = bad {
        println!("rejected: {err}");
    }

    println!("{}", app.greeting);
    Ok(())
}
