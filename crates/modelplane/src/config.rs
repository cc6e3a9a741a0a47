//! Configuration in layers: defaults → TOML file (`--config`) → environment
//! (`MODELPLANE_*`, `__` for nesting) → command-line flags. Unknown keys are
//! refused wherever they come from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use modelplane_domain::catalog::Source;
use modelplane_gateway::{GatewaySettings, ProviderSettings};
use modelplane_service::ingestion::{IngestionSettings, Schedule, SourceConfig};
use secrecy::ExposeSecret;

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

#[derive(Debug, Clone, Deserialize)]
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
    /// Threads that serve connections, each its own event loop; `/v1`
    /// requests run on the loop their connection came in on (0, the
    /// default: one per core).
    #[serde(default)]
    pub event_loops: usize,
    /// The 32-byte key (64 hex digits or base64) that seals stored secrets.
    /// Default: a key file `secret.key` created beside the SQLite database
    /// (or under `./data` for PostgreSQL; replicas must share one key, so
    /// set it explicitly there).
    #[serde(default)]
    pub secret_key: Option<SecretString>,
    /// This replica's name, recorded on its ingestion runs (default: the host name).
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub ingestion: IngestionConfig,
    /// `[sources.<slug>]`, e.g. `[sources.openai-api]`; in the environment
    /// `MODELPLANE_SOURCES__OPENAI_API__API_KEY` (slug upper-cased, `-` → `_`).
    #[serde(default)]
    pub sources: BTreeMap<String, SourceFile>,
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// `[providers.<slug>]` for the gateway, e.g. `[providers.openai]`; in
    /// the environment `MODELPLANE_PROVIDERS__OPENAI__API_KEY`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderFile>,
    #[serde(default)]
    pub local: LocalConfig,
}

/// `[local]`: model files on this replica's disk and the Hugging Face Hub.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Where `adapters/` (and by default `models/`) live (default: beside
    /// the SQLite database, else `./data`).
    pub data_dir: Option<PathBuf>,
    /// The models base directory until one is set through the API
    /// (default `<data_dir>/models`).
    pub base_dir: Option<PathBuf>,
    /// The Hub's origin (default: `HF_ENDPOINT`, else https://huggingface.co).
    pub hf_endpoint: Option<String>,
    /// A Hub token (default: `HF_TOKEN`).
    pub hf_token: Option<SecretString>,
    /// Per Hub request, connect to last byte of a small response; a download
    /// fails over after this long without a byte (default 30).
    pub hf_timeout_secs: Option<u64>,
    /// Attempts per Hub request, the first included (default 4).
    pub hf_max_attempts: Option<u32>,
    /// First retry delay in milliseconds, doubled per retry (default 500).
    pub hf_backoff_ms: Option<u64>,
    /// Memory of one GPU, for VRAM fits (default: what `nvidia-smi` reports).
    pub gpu_vram_bytes: Option<u64>,
    /// Downloads run at once (default 1).
    pub parallel_downloads: Option<usize>,
}

/// `[gateway]`: the `/v1` request path.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Where usage records spill when the database falls behind (default:
    /// the directory of the secret key file, i.e. beside the SQLite data).
    pub spill_dir: Option<PathBuf>,
    /// How long a replica trusts its cached keys and routes (default 5).
    pub cache_ttl_secs: Option<u64>,
    /// How often a replica shares its keys' token and spend counts with the
    /// other replicas, in milliseconds (default 200): the most by which
    /// replicas together can pass a tpm limit or a budget.
    pub limits_sync_ms: Option<u64>,
    /// How long an org's provider model listing is served fresh (default 60).
    pub provider_models_ttl_secs: Option<u64>,
    /// How long a provider listing or health probe may take, in milliseconds (default 10000).
    pub probe_timeout_ms: Option<u64>,
}

/// `[providers.<slug>]`: where the gateway reaches a provider, and the
/// platform's key for it (an org's own key, set through the API, wins).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
    /// The model a paid health probe asks (default: a small model of the provider).
    pub probe_model: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: default_listen(),
            database_url: default_database_url(),
            admin_token: None,
            log_format: LogFormat::default(),
            log_level: default_log_level(),
            shutdown_grace_secs: default_shutdown_grace(),
            event_loops: 0,
            secret_key: None,
            node: None,
            ingestion: IngestionConfig::default(),
            sources: BTreeMap::new(),
            gateway: GatewayConfig::default(),
            providers: BTreeMap::new(),
            local: LocalConfig::default(),
        }
    }
}

/// `[ingestion]`: the engine as a whole.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestionConfig {
    /// Whether this replica runs sources on their schedules.
    pub scheduler: bool,
    /// How often the scheduler looks for due sources, in seconds.
    pub tick_secs: u64,
    /// Complete runs in a row that must miss a model before it is marked as
    /// no longer listed.
    pub unlisted_after: i64,
}

impl Default for IngestionConfig {
    fn default() -> Self {
        IngestionConfig {
            scheduler: true,
            tick_secs: 30,
            unlisted_after: 3,
        }
    }
}

/// `[sources.<slug>]`: one ingestion source. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// The service's origin, e.g. `https://api.openai.com`.
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
    pub enabled: Option<bool>,
    /// `daily` (default), `hourly`, `weekly`, `off`, or a duration like `6h`.
    pub schedule: Option<String>,
    /// Up to this many seconds of random delay past the due time (default 900).
    pub jitter_secs: Option<u64>,
    pub page_size: Option<u32>,
    /// Stop a listing after this many pages (Hugging Face default: 20).
    pub max_pages: Option<u32>,
    /// Extra query parameters (Hugging Face: `author`, `filter`, `sort`, …).
    pub params: Option<BTreeMap<String, String>>,
    pub timeout_secs: Option<u64>,
    /// Attempts per request, the first included (default 5).
    pub max_attempts: Option<u32>,
    /// First retry delay in milliseconds, doubled per retry (default 500).
    pub backoff_ms: Option<u64>,
    /// Longest single wait, `Retry-After` included, in milliseconds (default 60000).
    pub max_backoff_ms: Option<u64>,
}

impl SourceFile {
    /// Fields of `other` that are set win.
    fn overlay(mut self, other: SourceFile) -> SourceFile {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            base_url,
            api_key,
            enabled,
            schedule,
            jitter_secs,
            page_size,
            max_pages,
            params,
            timeout_secs,
            max_attempts,
            backoff_ms,
            max_backoff_ms
        );
        self
    }
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
    Sources(String),
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
            .extract::<Config>()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))
            .and_then(|c| {
                c.source_configs()?;
                c.gateway_settings()?;
                c.local_settings()?;
                Ok(c)
            })
    }

    /// The `[sources.*]` tables by source. `openai-api` (as TOML writes it)
    /// and `openai_api` (as the environment does) name the same source; where
    /// both set a key, the `_` form (the later layer) wins.
    pub fn source_configs(&self) -> Result<BTreeMap<Source, SourceConfig>, ConfigError> {
        let mut files: BTreeMap<Source, SourceFile> = BTreeMap::new();
        let mut entries: Vec<(&String, &SourceFile)> = self.sources.iter().collect();
        entries.sort_by_key(|(k, _)| k.contains('_'));
        for (name, file) in entries {
            let key = name.replace('-', "_").to_lowercase();
            let source = Source::ALL
                .into_iter()
                .find(|s| s.config_key() == key)
                .ok_or_else(|| {
                    let valid: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
                    ConfigError::Sources(format!(
                        "unknown source [sources.{name}]; valid: {}",
                        valid.join(", ")
                    ))
                })?;
            let merged = files
                .remove(&source)
                .unwrap_or_default()
                .overlay(file.clone());
            files.insert(source, merged);
        }
        let mut out = BTreeMap::new();
        for source in Source::ALL {
            let file = files.remove(&source).unwrap_or_default();
            let mut config = SourceConfig::default();
            if source == Source::Huggingface {
                // The Hub lists millions of repos: by default the most
                // downloaded 20,000.
                config.max_pages = Some(20);
                config.params = vec![
                    ("sort".into(), "downloads".into()),
                    ("direction".into(), "-1".into()),
                ];
            }
            let name = source.as_str();
            if let Some(url) = file.base_url {
                let parsed = url::Url::parse(&url).map_err(|e| {
                    ConfigError::Sources(format!("sources.{name}.base_url {url:?}: {e}"))
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConfigError::Sources(format!(
                        "sources.{name}.base_url must be http or https"
                    )));
                }
                config.base_url = Some(url);
            }
            config.api_key = file
                .api_key
                .map(|k| checked_key(&format!("sources.{name}.api_key"), k.expose_secret()))
                .transpose()?;
            if let Some(enabled) = file.enabled {
                config.enabled = enabled;
            }
            if let Some(schedule) = file.schedule {
                config.schedule = Schedule::parse(&schedule).ok_or_else(|| {
                    ConfigError::Sources(format!(
                        "sources.{name}.schedule {schedule:?}: use daily, hourly, weekly, off, or a duration of at least 1m such as 6h"
                    ))
                })?;
            }
            if let Some(j) = file.jitter_secs {
                config.jitter = Duration::from_secs(j);
            }
            if file.page_size.is_some() {
                config.page_size = file.page_size;
            }
            if file.max_pages.is_some() {
                config.max_pages = file.max_pages.filter(|n| *n > 0);
            }
            if let Some(params) = file.params {
                config.params = params.into_iter().collect();
            }
            if let Some(t) = file.timeout_secs {
                config.timeout = Duration::from_secs(t.max(1));
            }
            if let Some(n) = file.max_attempts {
                config.max_attempts = n.max(1);
            }
            if let Some(ms) = file.backoff_ms {
                config.backoff = Duration::from_millis(ms);
            }
            if let Some(ms) = file.max_backoff_ms {
                config.max_backoff = Duration::from_millis(ms);
            }
            out.insert(source, config);
        }
        Ok(out)
    }

    /// The ingestion engine's settings; `HF_ENDPOINT` and `HF_TOKEN` are read
    /// from the environment, as the Hugging Face ecosystem does.
    pub fn ingestion_settings(&self) -> Result<IngestionSettings, ConfigError> {
        Ok(IngestionSettings {
            sources: self.source_configs()?,
            unlisted_after: self.ingestion.unlisted_after.max(1),
            node: self.node_name(),
            scheduler: self.ingestion.scheduler,
            tick: Duration::from_secs(self.ingestion.tick_secs.max(1)),
            hf_endpoint: std::env::var("HF_ENDPOINT").ok().filter(|v| !v.is_empty()),
            hf_token: std::env::var("HF_TOKEN").ok().filter(|v| !v.is_empty()),
        })
    }

    /// The gateway's settings. Provider slugs are those of
    /// `modelplane_domain::route::PROVIDERS` (`_` in the environment for `-`).
    pub fn gateway_settings(&self) -> Result<GatewaySettings, ConfigError> {
        let mut providers = std::collections::HashMap::new();
        for (name, file) in &self.providers {
            let slug = name.replace('_', "-").to_lowercase();
            let Some(known) = modelplane_domain::route::provider(&slug) else {
                let valid: Vec<&str> = modelplane_domain::route::PROVIDERS
                    .iter()
                    .map(|p| p.slug)
                    .collect();
                return Err(ConfigError::Sources(format!(
                    "unknown provider [providers.{name}]; valid: {}",
                    valid.join(", ")
                )));
            };
            let base_url = file
                .base_url
                .as_deref()
                .map(|u| {
                    modelplane_domain::route::check_base_url("base_url", u).map_err(|e| {
                        ConfigError::Sources(format!("providers.{name}.base_url: {}", e.message))
                    })
                })
                .transpose()?;
            providers.insert(
                known.slug.to_owned(),
                ProviderSettings {
                    base_url,
                    api_key: file
                        .api_key
                        .as_ref()
                        .map(|k| {
                            checked_key(&format!("providers.{name}.api_key"), k.expose_secret())
                        })
                        .transpose()?,
                    probe_model: file.probe_model.clone(),
                },
            );
        }
        let spill_dir = self.gateway.spill_dir.clone().unwrap_or_else(|| {
            self.secret_key_file()
                .parent()
                .map(Path::to_path_buf)
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from("."))
        });
        Ok(GatewaySettings {
            providers,
            spill_dir,
            cache_ttl: Duration::from_secs(self.gateway.cache_ttl_secs.unwrap_or(5)),
            limits_sync: Duration::from_millis(
                self.gateway.limits_sync_ms.unwrap_or(200).clamp(10, 60_000),
            ),
            provider_models_ttl: Duration::from_secs(
                self.gateway.provider_models_ttl_secs.unwrap_or(60),
            ),
            probe_timeout: Duration::from_millis(
                self.gateway
                    .probe_timeout_ms
                    .unwrap_or(10_000)
                    .clamp(50, 120_000),
            ),
        })
    }

    /// Where local model files and adapters live, and how the Hub is reached.
    pub fn local_settings(&self) -> Result<modelplane_service::local::LocalSettings, ConfigError> {
        let data_dir = self.local.data_dir.clone().unwrap_or_else(|| {
            self.secret_key_file()
                .parent()
                .map(Path::to_path_buf)
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from("."))
        });
        let endpoint = self
            .local
            .hf_endpoint
            .clone()
            .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|v| !v.is_empty()));
        if let Some(url) = &endpoint {
            let parsed = url::Url::parse(url)
                .map_err(|e| ConfigError::Sources(format!("local.hf_endpoint {url:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::Sources(
                    "local.hf_endpoint must be http or https".into(),
                ));
            }
        }
        let token = self
            .local
            .hf_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .or_else(|| std::env::var("HF_TOKEN").ok().filter(|v| !v.is_empty()));
        let mut hub = modelplane_hub::HubSettings::from_env_or(endpoint, token);
        if let Some(t) = self.local.hf_timeout_secs {
            hub.timeout = Duration::from_secs(t.max(1));
        }
        if let Some(n) = self.local.hf_max_attempts {
            hub.max_attempts = n.max(1);
        }
        if let Some(ms) = self.local.hf_backoff_ms {
            hub.backoff = Duration::from_millis(ms);
        }
        Ok(modelplane_service::local::LocalSettings {
            default_base_dir: self
                .local
                .base_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("models")),
            data_dir,
            node: self.node_name(),
            hub,
            gpu_vram_bytes: self.local.gpu_vram_bytes,
            parallel_downloads: self.local.parallel_downloads.unwrap_or(1).clamp(1, 8),
        })
    }

    /// `node`, else the host name, else `modelplane`.
    pub fn node_name(&self) -> String {
        self.node
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "modelplane".to_owned())
    }

    /// Where the default secret key file lives: beside the SQLite database,
    /// else `./data/secret.key`.
    pub fn secret_key_file(&self) -> std::path::PathBuf {
        let path = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))
            .map(|rest| rest.split('?').next().unwrap_or(rest))
            .filter(|p| !p.is_empty() && !p.starts_with(':'));
        match path.and_then(|p| Path::new(p).parent()) {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("secret.key"),
            Some(_) => std::path::PathBuf::from("secret.key"),
            None => std::path::PathBuf::from("data/secret.key"),
        }
    }
}

/// A configured credential as sent in a request header: one that cannot be
/// (empty, or with a line break or other control character, as a key read
/// from a file with its trailing newline has) is refused at start-up, named
/// by its setting and never echoed, rather than leaving requests to go out
/// without it.
fn checked_key(setting: &str, key: &str) -> Result<String, ConfigError> {
    if key.is_empty() || key.chars().any(char::is_control) {
        return Err(ConfigError::Sources(format!(
            "{setting} must be non-empty and free of line breaks and other control characters"
        )));
    }
    Ok(key.to_owned())
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

    #[test]
    fn a_configured_key_with_a_line_break_is_refused_by_setting_without_echoing_it() {
        // (The environment's values reach figment trimmed; a file's string
        // keeps what its escapes say.)
        Jail::expect_with(|jail| {
            jail.create_file(
                "mp.toml",
                "[providers.openai]\napi_key = \"sk-secret-value\\n\"\n",
            )?;
            let Err(err) = Config::load(Some(Path::new("mp.toml")), FlagOverrides::default())
                .and_then(|cfg| cfg.gateway_settings())
            else {
                panic!("a provider key with a newline must be refused");
            };
            let err = err.to_string();
            assert!(err.contains("providers.openai.api_key"), "{err}");
            assert!(!err.contains("sk-secret"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file(
                "mp.toml",
                "[sources.openai-api]\napi_key = \"sk-other-secret\\r\\n\"\n",
            )?;
            let Err(err) = Config::load(Some(Path::new("mp.toml")), FlagOverrides::default())
                .and_then(|cfg| cfg.ingestion_settings())
            else {
                panic!("a source key with a newline must be refused");
            };
            let err = err.to_string();
            assert!(err.contains("sources.openai-api.api_key"), "{err}");
            assert!(!err.contains("sk-other"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("MODELPLANE_PROVIDERS__OPENAI__API_KEY", "sk-fine");
            jail.set_env("MODELPLANE_SOURCES__OPENAI_API__API_KEY", "sk-fine-too");
            let cfg = Config::load(None, FlagOverrides::default()).map_err(|e| e.to_string())?;
            let gateway = cfg.gateway_settings().map_err(|e| e.to_string())?;
            assert_eq!(
                gateway.providers["openai"].api_key.as_deref(),
                Some("sk-fine")
            );
            assert!(cfg.ingestion_settings().is_ok());
            Ok(())
        });
    }
}
