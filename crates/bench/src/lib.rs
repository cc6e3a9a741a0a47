//! What the benchmarks share: a modelplane server started in-process on a
//! random port with a known superadmin token, and latency percentiles.

use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use modelplane::config::{Config, LogFormat};
use modelplane::Application;
use modelplane_store::Store;

/// The bootstrap superadmin token of every benchmark server.
pub const TOKEN: &str = "mp_bench_superadmin_token_000000000000";

/// A quiet configuration on `database_url`: random port, [`TOKEN`], warnings
/// only, no ingestion scheduler in the background.
pub fn config(database_url: &str) -> Config {
    let mut config = Config {
        listen: ([127, 0, 0, 1], 0).into(),
        database_url: database_url.to_owned(),
        admin_token: Some(SecretString::from(TOKEN)),
        log_format: LogFormat::Human,
        log_level: "warn".to_owned(),
        shutdown_grace_secs: 5,
        ..Config::default()
    };
    config.ingestion.scheduler = false;
    config
}

/// A running server and a client for it.
pub struct Server {
    pub store: Store,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Starts the server exactly as `modelplane serve` does.
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        let app = Application::build(config)
            .await
            .context("starting modelplane")?;
        let store = app.store().clone();
        let base = format!("http://{}", app.local_addr()?);
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run_until(shutdown.clone()));
        Ok(Server {
            store,
            base,
            client: reqwest::Client::new(),
            shutdown,
            handle,
        })
    }

    /// The id of the bootstrap org.
    pub async fn org_id(&self) -> anyhow::Result<Uuid> {
        let orgs: serde_json::Value = self
            .client
            .get(format!("{}/api/v1/orgs", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        Ok(orgs["orgs"][0]["id"].as_str().context("org id")?.parse()?)
    }

    /// Shuts the server down gracefully and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.handle.await;
    }
}

/// The p50 and p95 of `samples`, in milliseconds.
pub fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    (at(0.5), at(0.95))
}
