//! `Idempotency-Key` for every write: a `POST`, `PUT`, `PATCH` or `DELETE`
//! repeated with the same key (by the same credential) answers the first
//! result again and does not run twice. A key reused for a different
//! request is refused (422 `idempotency_key_reused`); a repeat that arrives
//! while the first is still running is refused (409
//! `idempotency_key_in_progress`). A first attempt that fails on our side
//! (5xx) is forgotten, so a retry runs. Keys are kept for 24 hours.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use modelplane_domain::staged::check_key;
use modelplane_domain::time::{now, to_micros};
use modelplane_store::Claim;

use crate::error::{ApiError, ErrorCode};
use crate::extract::token_from;
use crate::state::AppState;
use crate::MAX_BODY_BYTES;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on every answer to a request that carried a key: `true` on a replay.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotency-replayed");
const KEEP_MICROS: i64 = 24 * 3600 * 1_000_000;
/// The largest response that is kept for replay (bulk answers included).
const RESPONSE_MAX: usize = 64 * 1024 * 1024;

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let writes = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let Some(raw_key) = req.headers().get(&IDEMPOTENCY_KEY).cloned() else {
        return next.run(req).await;
    };
    if !writes {
        return next.run(req).await;
    }
    // The rule staged changes use too, since a key names one. A value that
    // is not visible ASCII reads as empty, which the rule refuses.
    let key = raw_key.to_str().unwrap_or_default().to_owned();
    if let Err(e) = check_key(&key) {
        return ApiError::from(e).into_response();
    }
    let (parts, body) = req.into_parts();
    // Without a credential the request fails authentication anyway.
    let Some(token) = token_from(&parts).map(str::to_owned) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
                .into_response()
        }
    };
    let scope = hex_sha256(&[token.as_bytes()]);
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("");
    let fingerprint = hex_sha256(&[parts.method.as_str().as_bytes(), target.as_bytes(), &bytes]);
    let at = to_micros(&now());
    let claim = state
        .store
        .claim_idempotency(&scope, &key, &fingerprint, at, at - KEEP_MICROS)
        .await;
    match claim {
        Err(e) => ApiError::from(modelplane_service::ServiceError::from(e)).into_response(),
        Ok(Claim::Mismatch) => ApiError::new(
            ErrorCode::UnprocessableCode("idempotency_key_reused"),
            "this Idempotency-Key was already used for a different request",
        )
        .into_response(),
        Ok(Claim::InProgress) => ApiError::new(
            ErrorCode::ConflictCode("idempotency_key_in_progress"),
            "a request with this Idempotency-Key is still running; retry later",
        )
        .into_response(),
        Ok(Claim::Replay {
            status,
            content_type,
            body,
        }) => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                resp.headers_mut().insert(CONTENT_TYPE, ct);
            }
            resp.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            resp
        }
        Ok(Claim::Claimed) => {
            let resp = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            record(&state, &scope, &key, resp).await
        }
    }
}

/// Keeps the answer of a claimed key (or forgets the claim on a 5xx) and
/// passes it on.
async fn record(state: &AppState, scope: &str, key: &str, resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let status = parts.status;
    let bytes = match to_bytes(body, RESPONSE_MAX).await {
        Ok(b) => b,
        Err(e) => {
            let _ = state.store.release_idempotency(scope, key).await;
            tracing::error!(error = %e, "response of an idempotent request could not be kept");
            return ApiError::new(ErrorCode::Internal, "internal error; see the server log")
                .into_response();
        }
    };
    let kept = if status.is_server_error() {
        state.store.release_idempotency(scope, key).await
    } else {
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        state
            .store
            .finish_idempotency(scope, key, status.as_u16(), content_type, &bytes)
            .await
    };
    if let Err(e) = kept {
        tracing::error!(error = %e, "idempotency record failed");
    }
    parts
        .headers
        .insert(REPLAYED, HeaderValue::from_static("false"));
    Response::from_parts(parts, Body::from(bytes))
}
