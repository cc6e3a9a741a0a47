//! `/v1`: the OpenAI API for applications, served by the gateway. Kept out
//! of the admin API's middleware: no request timeout (routes set their
//! own, and streams run long), no idempotency store, and errors in OpenAI's
//! shape so OpenAI clients understand them.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;

use modelplane_gateway::{Endpoint, Gateway};

use crate::state::AppState;

/// Request bodies above this are refused with 413 (images inline make chat bodies large).
pub const MAX_V1_BODY_BYTES: usize = 32 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/{*rest}", any(unknown))
        .layer(DefaultBodyLimit::max(MAX_V1_BODY_BYTES))
}

async fn models(State(s): State<AppState>, headers: HeaderMap) -> Response {
    s.gateway.list_models(&headers).await
}

async fn serve(
    s: &AppState,
    headers: &HeaderMap,
    endpoint: Endpoint,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => s.gateway.handle(headers, endpoint, body).await,
        Err(rejection) => {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "request_too_large"
            } else {
                "invalid_request"
            };
            Gateway::error(status, code, &rejection.body_text())
        }
    }
}

async fn chat(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    serve(&s, &headers, Endpoint::ChatCompletions, body).await
}

async fn completions(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    serve(&s, &headers, Endpoint::Completions, body).await
}

async fn embeddings(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    serve(&s, &headers, Endpoint::Embeddings, body).await
}

async fn unknown(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    Gateway::error(
        StatusCode::NOT_FOUND,
        "unknown_url",
        &format!("Unrecognized request URL ({method}: {}).", uri.path()),
    )
}
