use std::sync::Arc;

use modelplane_store::Store;

use crate::metrics::HttpMetrics;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<HttpMetrics>,
}

impl AppState {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            metrics: Arc::new(HttpMetrics::new()),
        }
    }
}
