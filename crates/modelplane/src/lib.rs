//! The `modelplane` binary's library half: configuration, logging and the
//! [`Application`] that binds, migrates, bootstraps and serves. Kept in a
//! library so integration tests start exactly what `modelplane serve` runs.

pub mod config;
pub mod inspect;
pub mod server;
pub mod sqlite_alloc;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use modelplane_api::AppState;
use modelplane_gateway::Gateway;
use modelplane_service::auth;
use modelplane_service::ingestion::Ingestion;
use modelplane_service::local::LocalModels;
use modelplane_service::secrets::SecretBox;
use modelplane_store::Store;

pub use config::Config;

/// A bound, migrated server, ready to run.
pub struct Application {
    listener: TcpListener,
    store: Store,
    ingestion: Ingestion,
    gateway: Gateway,
    local: LocalModels,
    shutdown_grace: Duration,
    event_loops: usize,
    /// Run first on each event loop's thread, inside its runtime.
    loop_start: Option<fn()>,
}

/// The key that seals stored secrets: configured, or the key file beside the
/// data (created on first use).
pub fn secret_box(config: &Config) -> anyhow::Result<SecretBox> {
    use secrecy::ExposeSecret;
    match &config.secret_key {
        Some(key) => Ok(SecretBox::parse(key.expose_secret())
            .map_err(|e| anyhow::anyhow!("secret_key: {e}"))?),
        None => Ok(SecretBox::load_or_create(&config.secret_key_file())?),
    }
}

impl Application {
    /// Connects to the database, applies migrations, bootstraps the first
    /// superadmin key when configured, and binds the listener (port 0 picks
    /// a free port).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let store = Store::connect(&config.database_url).await?;
        store.migrate().await?;
        if let Some(token) = &config.admin_token {
            if auth::bootstrap(&store, token.expose_secret()).await? {
                tracing::info!("fresh database: created the default org and a superadmin key from MODELPLANE_ADMIN_TOKEN");
            }
        }
        let secrets = secret_box(config)?;
        let ingestion = Ingestion::new(
            store.clone(),
            config.ingestion_settings()?,
            Some(secrets.clone()),
        );
        ingestion.recover().await?;
        let gateway = Gateway::start(store.clone(), secrets, config.gateway_settings()?);
        let local = LocalModels::new(store.clone(), config.local_settings()?)?;
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Self {
            listener,
            store,
            ingestion,
            gateway,
            local,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
            event_loops: match config.event_loops {
                0 => server::default_event_loops(),
                n => n,
            },
            loop_start: None,
        })
    }

    /// Sets what runs first on each event loop's thread, inside its
    /// runtime (the binary starts its allocator's idle purge there).
    pub fn on_event_loop_start(mut self, start: fn()) -> Self {
        self.loop_start = Some(start);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets
    /// in-flight requests finish (up to the grace period) and closes the pool.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(address = %addr, backend = self.store.backend().as_str(), "modelplane listening on http://{addr}");
        self.ingestion.spawn_scheduler();
        self.local.start_downloads().await?;
        let store = self.store.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match store.warm_search_index().await {
                Ok(()) => tracing::debug!(elapsed = ?started.elapsed(), "search index loaded"),
                Err(e) => tracing::warn!(error = %e, "loading the search index at start-up"),
            }
            let started = std::time::Instant::now();
            match store.warm_catalog_index().await {
                Ok(()) => tracing::debug!(elapsed = ?started.elapsed(), "catalog index loaded"),
                Err(e) => tracing::warn!(error = %e, "loading the catalog index at start-up"),
            }
        });
        let state = AppState::new(
            self.store.clone(),
            self.ingestion.clone(),
            self.gateway.clone(),
            self.local.clone(),
        );
        let app = modelplane_api::router(state.clone());
        let gateway = self.gateway.clone();
        let loop_start = self.loop_start;
        let mut loops = server::EventLoops::start(
            self.event_loops,
            app,
            state,
            Arc::new(move || {
                gateway.use_own_client();
                if let Some(start) = loop_start {
                    start();
                }
            }),
        )?;
        let grace = self.shutdown_grace;
        tokio::select! {
            () = loops.serve(self.listener, shutdown.clone()) => {}
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("in-flight requests did not finish within {grace:?}; stopping anyway");
            }
        }
        self.ingestion.shutdown().await;
        // A download in flight keeps its partial file and resumes at the next start.
        self.local.shutdown().await;
        // Usage records still queued are written (or spilled) before the pool closes.
        self.gateway.shutdown().await;
        self.store.close().await;
        let _ = tokio::task::spawn_blocking(move || loops.finish()).await;
        tracing::info!("modelplane stopped");
        Ok(())
    }
}

/// Cancels the returned token on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = async {
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %err, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
        cancel.cancel();
    });
    token
}
