use std::sync::Arc;

use modelplane_gateway::Gateway;
use modelplane_service::ingestion::Ingestion;
use modelplane_service::local::LocalModels;
use modelplane_store::Store;

use crate::metrics::HttpMetrics;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub ingestion: Ingestion,
    pub gateway: Gateway,
    pub local: LocalModels,
    pub metrics: Arc<HttpMetrics>,
}

impl AppState {
    pub fn new(store: Store, ingestion: Ingestion, gateway: Gateway, local: LocalModels) -> Self {
        Self {
            store,
            ingestion,
            gateway,
            local,
            metrics: Arc::new(HttpMetrics::new()),
        }
    }
}
