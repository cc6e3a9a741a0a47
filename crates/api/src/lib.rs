//! The HTTP API: the only crate that knows HTTP and wire JSON.
//!
//! Handlers are thin: they extract, call one service function and map the
//! result. Errors become the envelope in [`error`]; every route is declared
//! through `utoipa-axum`, so the OpenAPI document cannot miss one. [`mcp`]
//! serves the same reads to AI agents at `/mcp`, beside the document.

pub mod error;
pub mod extract;
pub mod idempotency;
pub mod mcp;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod scopes;
pub mod state;
pub mod v1;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application router with its middleware.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = openapi::split();
    let openapi_json = openapi::render(&openapi);
    let admin = api.merge(routes::docs::router(openapi_json))
        .merge(mcp::router(state.clone()))
        .fallback(routes::fallback::not_found)
        .method_not_allowed_fallback(routes::fallback::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::guard))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(60)))
        .layer(CatchPanicLayer::custom(routes::fallback::panic_response))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let request_id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid));
    // `/v1` has no middleware: `v1::serve` sets the request id and counts
    // the request itself.
    let gateway = v1::router(state.clone());
    gateway.merge(admin.with_state(state))
}
