//! Configuration in layers: defaults → TOML file (`--config`) → environment
//! (`MODELPLANE_*`, `__` for nesting) → command-line flags. Unknown keys are
//! refused wherever they come from.

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/modelplane.db";
pub const ENV_PREFIX: &str = "MODELPLANE_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `sqlite://path` (default, created if missing) or `postgres://…`.
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// On a fresh database, a superadmin key with exactly this token is created.
    #[serde(default)]
    pub admin_token: Option<SecretString>,
    #[serde(default)]
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `modelplane=debug,info`; `RUST_LOG` wins.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// How long shutdown waits for in-flight requests before giving up.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
}

fn default_listen() -> SocketAddr {
    // A constant that always parses.
    DEFAULT_LISTEN
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)))
}

fn default_database_url() -> String {
    DEFAULT_DATABASE_URL.to_owned()
}

fn default_log_level() -> String {
    "info".to_owned()
}

fn default_shutdown_grace() -> u64 {
    30
}

/// Values given as command-line flags; only those given override the rest.
#[derive(Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(String),
    #[error("invalid configuration: {0}")]
    Invalid(Box<figment::Error>),
}

impl Config {
    pub fn load(file: Option<&Path>, flags: FlagOverrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.display().to_string()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))
    }
}

#[cfg(test)]
#[expect(
    clippy::result_large_err,
    reason = "figment's Jail API returns figment::Error"
)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        Jail::expect_with(|jail| {
            jail.create_file("mp.toml", "listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://file.db\"\nlog_format = \"json\"\n")?;
            jail.set_env("MODELPLANE_DATABASE_URL", "sqlite://env.db");
            let cfg = Config::load(Some(Path::new("mp.toml")), FlagOverrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen.to_string(), "127.0.0.1:9000");
            assert_eq!(cfg.database_url, "sqlite://env.db");
            assert_eq!(cfg.log_format, LogFormat::Json);
            let flags = FlagOverrides {
                database_url: Some("sqlite://flag.db".into()),
                ..Default::default()
            };
            let cfg = Config::load(Some(Path::new("mp.toml")), flags).map_err(|e| e.to_string())?;
            assert_eq!(cfg.database_url, "sqlite://flag.db");
            Ok(())
        });
    }

    #[test]
    fn defaults_hold_without_any_source() {
        Jail::expect_with(|_| {
            let cfg = Config::load(None, FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen.to_string(), DEFAULT_LISTEN);
            assert_eq!(cfg.database_url, DEFAULT_DATABASE_URL);
            assert!(cfg.admin_token.is_none());
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "mp.toml",
                "listen = \"127.0.0.1:9000\"\nlisten_port = 9000\n",
            )?;
            let err = Config::load(Some(Path::new("mp.toml")), FlagOverrides::default())
                .expect_err("unknown key must fail")
                .to_string();
            assert!(err.contains("listen_port"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("MODELPLANE_DATABSE_URL", "x");
            let err = Config::load(None, FlagOverrides::default())
                .expect_err("unknown env key must fail")
                .to_string();
            assert!(err.contains("databse_url"), "{err}");
            Ok(())
        });
    }
}
