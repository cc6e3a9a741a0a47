//! `/v1`: the OpenAI API for applications, served by the gateway. Kept out
//! of the admin API's router and middleware: no request timeout (routes set
//! their own, and streams run long), no idempotency store, and errors in
//! OpenAI's shape so OpenAI clients understand them.
//!
//! [`serve`] is the whole of it, request id and metrics included: the event
//! loops call it directly for every `/v1` request, and [`router`] mounts
//! the same function, so there is one behaviour. Going through axum's
//! routing, a `from_fn` middleware and tower-http's request-id layers had
//! cost each proxied request several boxed futures and moves of the
//! gateway's large future.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use futures::FutureExt;
use http_body_util::BodyExt;

use modelplane_gateway::{collect_bounded, Collected, Endpoint, Gateway};

use crate::metrics::{method_label, HttpLabels};
use crate::state::AppState;

/// Request bodies above this are refused with 413 (images inline make chat bodies large).
pub const MAX_V1_BODY_BYTES: usize = 32 * 1024 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `/v1` and everything under it, for the router.
pub fn router(state: AppState) -> Router {
    let service = tower::service_fn(move |req: Request<Body>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(serve(&state, req).await) }
    });
    Router::new()
        .route_service("/v1", service.clone())
        .route_service("/v1/{*rest}", service)
}

/// What a `/v1` path serves.
#[derive(Clone, Copy)]
enum Target {
    Models,
    Call(Endpoint),
}

/// The path's target and its metrics label; `None` for an unknown path.
fn target(path: &str) -> Option<(Target, &'static str)> {
    Some(match path {
        "/v1/models" => (Target::Models, "/v1/models"),
        "/v1/chat/completions" => (
            Target::Call(Endpoint::ChatCompletions),
            "/v1/chat/completions",
        ),
        "/v1/completions" => (Target::Call(Endpoint::Completions), "/v1/completions"),
        "/v1/embeddings" => (Target::Call(Endpoint::Embeddings), "/v1/embeddings"),
        _ => return None,
    })
}

/// Serves one `/v1` request: the answer carries the request's
/// `x-request-id` (a new one when it had none) and is counted in the
/// metrics under its route.
pub async fn serve(state: &AppState, req: Request<Body>) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let request_id = parts
        .headers
        .get(&REQUEST_ID)
        .cloned()
        .unwrap_or_else(new_request_id);
    let found = target(parts.uri.path());
    let route = found.map_or(UNKNOWN_ROUTE, |(_, route)| route);
    let mut response = caught(answer(state, found, &parts, body), route).await;
    response.headers_mut().insert(REQUEST_ID, request_id);
    state.metrics.observe(
        HttpLabels {
            method: method_label(&parts.method),
            route: Cow::Borrowed(route),
            status: response.status().as_u16(),
        },
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The metrics label of a path that is none of the four.
const UNKNOWN_ROUTE: &str = "/v1/{*rest}";

/// The answer to one `/v1` request, whose path's [`target`] is `found`.
async fn answer(
    state: &AppState,
    found: Option<(Target, &'static str)>,
    parts: &Parts,
    body: Body,
) -> Response {
    match found {
        None => Gateway::error(
            StatusCode::NOT_FOUND,
            "unknown_url",
            &format!(
                "Unrecognized request URL ({}: {}).",
                parts.method,
                parts.uri.path()
            ),
        ),
        Some((Target::Models, _)) if parts.method == Method::GET => {
            state.gateway.list_models(&parts.headers).await
        }
        Some((Target::Call(endpoint), _)) if parts.method == Method::POST => {
            match read_body(body).await {
                Ok(body) => state.gateway.handle(&parts.headers, endpoint, body).await,
                Err(refusal) => refusal,
            }
        }
        Some((target, route)) => {
            let allowed = match target {
                Target::Models => "GET",
                Target::Call(_) => "POST",
            };
            let mut response = Gateway::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{route} accepts {allowed}, not {}.", parts.method),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
            response
        }
    }
}

/// `answer`, or an OpenAI-shaped 500 should it panic: the client gets an
/// answer it understands (the admin API's router has its own catcher)
/// instead of a dropped connection, and the panic is logged under `route`.
async fn caught<F>(answer: F, route: &'static str) -> Response
where
    F: Future<Output = Response>,
{
    match AssertUnwindSafe(answer).catch_unwind().await {
        Ok(answered) => answered,
        Err(panic) => {
            let detail = crate::routes::fallback::panic_detail(&*panic);
            tracing::error!(panic = detail, route, "a /v1 request panicked");
            Gateway::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error; see the server log",
            )
        }
    }
}

/// How much more of a refused body is read and dropped, at most, so that a
/// client still sending it gets the 413 rather than a broken pipe; past
/// this (or [`DRAIN_MAX_TIME`]) the connection is closed under it.
const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// The request body, whole and at most [`MAX_V1_BODY_BYTES`]; else the
/// OpenAI-shaped refusal (413 too large, 400 unreadable).
async fn read_body(mut body: Body) -> Result<Bytes, Response> {
    let too_large = || {
        Gateway::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            &format!("the request body exceeds {MAX_V1_BODY_BYTES} bytes"),
        )
    };
    // A declared `content-length` past the bound is refused before reading.
    match collect_bounded(&mut body, MAX_V1_BODY_BYTES).await {
        Collected::Whole(bytes) => Ok(bytes),
        Collected::TooLarge => {
            drain(body).await;
            Err(too_large())
        }
        Collected::Broken(e) => Err(Gateway::error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("the request body could not be read: {e}"),
        )),
    }
}

/// Reads and drops what the client still sends of a refused body, within
/// [`DRAIN_MAX_BYTES`] and [`DRAIN_MAX_TIME`].
async fn drain(mut body: Body) {
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > DRAIN_MAX_BYTES {
                break;
            }
        }
    })
    .await;
}

/// A fresh request id: a random UUID, as tower-http's `MakeRequestUuid` makes.
fn new_request_id() -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateways_four_paths_have_a_target() {
        for (path, route) in [
            ("/v1/models", "/v1/models"),
            ("/v1/chat/completions", "/v1/chat/completions"),
            ("/v1/completions", "/v1/completions"),
            ("/v1/embeddings", "/v1/embeddings"),
        ] {
            assert_eq!(target(path).map(|(_, r)| r), Some(route));
        }
        for path in [
            "/v1",
            "/v1/",
            "/v1/models/x",
            "/v1/chat/completions/",
            "/v1/files",
        ] {
            assert!(target(path).is_none(), "{path}");
        }
    }

    #[test]
    fn a_fresh_request_id_is_a_uuid() {
        let id = new_request_id();
        let text = id.to_str().expect("ascii");
        assert!(uuid::Uuid::parse_str(text).is_ok(), "{text}");
    }

    #[test]
    fn a_panicking_answer_becomes_an_openai_shaped_500() {
        let panicking = async {
            if target("/v1/models").is_some() {
                panic!("boom");
            }
            Gateway::error(StatusCode::OK, "unreached", "")
        };
        let response = futures::executor::block_on(caught(panicking, "/v1/models"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = futures::executor::block_on(response.into_body().collect())
            .expect("body")
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"]["type"], "server_error", "{body}");
        assert_eq!(body["error"]["code"], "internal_error", "{body}");

        let fine = async { Gateway::error(StatusCode::NOT_FOUND, "x", "y") };
        let response = futures::executor::block_on(caught(fine, UNKNOWN_ROUTE));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
