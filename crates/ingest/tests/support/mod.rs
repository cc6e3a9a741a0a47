//! A local fixture server for source tests: serves an axum router on a
//! random port, so each source's real client talks real HTTP to it.
#![allow(dead_code)]

use std::path::PathBuf;

use axum::Router;
use modelplane_ingest::{SourceClient, SourceSettings};

/// Starts `router` on 127.0.0.1:0 and returns its origin, e.g. `http://127.0.0.1:40123`.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fixture server");
    let addr = listener.local_addr().expect("fixture address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("fixture server");
    });
    format!("http://{addr}")
}

/// Settings for tests: fast backoff so retry tests take milliseconds.
pub fn settings(base_url: &str) -> SourceSettings {
    let mut s = SourceSettings::new(base_url);
    s.backoff = std::time::Duration::from_millis(5);
    s.max_backoff = std::time::Duration::from_millis(50);
    s.timeout = std::time::Duration::from_secs(5);
    s
}

pub fn client(settings: SourceSettings) -> SourceClient {
    SourceClient::new(settings).expect("source client")
}

/// A file under `crates/ingest/tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}
